// Command loadrecords writes N services into etcd in kube2sky's layout (a
// ClusterIP A leaf and a named-port SRV leaf each, labelled with the
// record hash) and writes a dnsperf query file that asks for them.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/skypod/skypod/skydns/msg"
	"github.com/skypod/skypod/test/bench/benchrecords"
)

func main() {
	endpoint := flag.String("etcd", "http://127.0.0.1:2379", "etcd URL")
	services := flag.Int("services", 10000, "services to write")
	perNamespace := flag.Int("per-namespace", 5000, "services per namespace")
	domain := flag.String("domain", "cluster.local.", "cluster domain")
	queries := flag.String("queries", "", "dnsperf query file to write")
	flag.Parse()
	if err := run(*endpoint, *services, *perNamespace, *domain, *queries); err != nil {
		fmt.Fprintln(os.Stderr, "loadrecords:", err)
		os.Exit(1)
	}
}

func run(endpoint string, services, perNamespace int, domain, queryFile string) error {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer c.Close()
	records, names := benchrecords.Services(services, perNamespace, domain, msg.DefaultPrefix)
	if err := benchrecords.Write(context.Background(), c, records, 10*time.Second); err != nil {
		return err
	}
	if queryFile == "" {
		return nil
	}
	rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s A\n", n)
	}
	return os.WriteFile(queryFile, []byte(b.String()), 0o644)
}
