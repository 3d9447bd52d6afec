// Command loadrecords writes N services into etcd in kube2sky's layout,
// built by kube2sky's own record builder from synthetic Services and
// Endpoints, and writes a dnsperf query file that asks for them. By default
// every service has a ClusterIP and one named port (an A and an SRV leaf
// each, labelled with the record hash); flags mix in headless services,
// services without named ports, and the PTR records kube2sky writes.
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/skypod/skypod/kube2sky"
	"github.com/skypod/skypod/skydns/msg"
	"github.com/skypod/skypod/test/bench/benchrecords"
)

// layout is the mix of services written, and whether their PTR records
// are too.
type layout struct {
	benchrecords.Layout
	reverse bool // Also the PTR records kube2sky writes.
}

func main() {
	endpoint := flag.String("etcd", "http://127.0.0.1:2379", "etcd URL")
	var l layout
	flag.IntVar(&l.Services, "services", 10000, "services to write")
	flag.IntVar(&l.PerNamespace, "per-namespace", 5000, "services per namespace")
	flag.IntVar(&l.HeadlessPercent, "headless-percent", 0, "percentage of services that are headless")
	flag.IntVar(&l.Endpoints, "endpoints", 5, "endpoint addresses of each headless service")
	flag.IntVar(&l.NamedPercent, "named-port-percent", 100, "percentage of services with a named port (SRV records)")
	flag.BoolVar(&l.reverse, "reverse", false, "write PTR records too, as kube2sky does")
	domain := flag.String("domain", "cluster.local.", "cluster domain")
	queries := flag.String("queries", "", "dnsperf query file to write")
	flag.Parse()
	if err := run(*endpoint, l, *domain, *queries); err != nil {
		fmt.Fprintln(os.Stderr, "loadrecords:", err)
		os.Exit(1)
	}
}

func run(endpoint string, l layout, domain, queryFile string) error {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer c.Close()
	namer := kube2sky.Namer{Domain: domain, Prefix: msg.DefaultPrefix}
	all := map[string]string{}
	var names []string
	for i := 0; i < l.Services; i++ {
		records, err := l.records(namer, i)
		if err != nil {
			return err
		}
		maps.Copy(all, records)
		names = append(names, fmt.Sprintf("svc-%d.%s.svc.%s", i, l.Namespace(i), domain))
	}
	keys := len(all)
	if err := benchrecords.Write(context.Background(), c, all, 10*time.Second); err != nil {
		return err
	}
	fmt.Printf("wrote %d keys for %d services\n", keys, l.Services)
	if queryFile == "" {
		return nil
	}
	return writeQueries(queryFile, names)
}

// records are the keys and values kube2sky writes for service i.
func (l layout) records(namer kube2sky.Namer, i int) (kube2sky.Records, error) {
	svc, eps := l.Objects(i)
	out, _, err := namer.ServiceRecords(svc, eps) // Nothing here is skipped: the objects are well formed.
	if err != nil || !l.reverse {
		return out, err
	}
	rev, _, err := namer.ReverseRecords(svc, eps)
	maps.Copy(out, rev)
	return out, err
}

func writeQueries(file string, names []string) error {
	rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s A\n", n)
	}
	return os.WriteFile(file, []byte(b.String()), 0o644)
}
