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
	var names []string
	var ops []clientv3.Op
	for i := 0; i < services; i++ {
		ns := fmt.Sprintf("ns-%d", i/perNamespace)
		name := fmt.Sprintf("svc-%d.%s.svc.%s", i, ns, domain)
		ip := fmt.Sprintf("10.%d.%d.%d", 100+i>>16, (i>>8)&255, i&255)
		a, _ := msg.Marshal(msg.Service{Host: ip, Priority: 10, Weight: 10, TTL: 30})
		srv, _ := msg.Marshal(msg.Service{Host: name, Port: 80, Priority: 10, Weight: 10, TTL: 30})
		label := msg.HashLabel(a)
		ops = append(ops,
			clientv3.OpPut(msg.Path(label+"."+name, msg.DefaultPrefix), string(a)),
			clientv3.OpPut(msg.Path(label+"._http._tcp."+name, msg.DefaultPrefix), string(srv)))
		names = append(names, name)
		if len(ops) >= 100 {
			if err := commit(c, ops); err != nil {
				return err
			}
			ops = ops[:0]
		}
	}
	if err := commit(c, ops); err != nil {
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

func commit(c *clientv3.Client, ops []clientv3.Op) error {
	if len(ops) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Txn(ctx).Then(ops...).Commit()
	return err
}
