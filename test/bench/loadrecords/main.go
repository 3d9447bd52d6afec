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
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skypod/skypod/kube2sky"
	"github.com/skypod/skypod/skydns/msg"
	"github.com/skypod/skypod/test/bench/benchrecords"
)

// layout is the mix of services written.
type layout struct {
	services, perNamespace int
	headlessPercent        int  // Of services: headless, with endpoints addresses each.
	endpoints              int  // Addresses of each headless service.
	namedPercent           int  // Of services: with a named port (an SRV leaf per record).
	reverse                bool // Also the PTR records kube2sky writes.
}

func main() {
	endpoint := flag.String("etcd", "http://127.0.0.1:2379", "etcd URL")
	var l layout
	flag.IntVar(&l.services, "services", 10000, "services to write")
	flag.IntVar(&l.perNamespace, "per-namespace", 5000, "services per namespace")
	flag.IntVar(&l.headlessPercent, "headless-percent", 0, "percentage of services that are headless")
	flag.IntVar(&l.endpoints, "endpoints", 5, "endpoint addresses of each headless service")
	flag.IntVar(&l.namedPercent, "named-port-percent", 100, "percentage of services with a named port (SRV records)")
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
	for i := 0; i < l.services; i++ {
		records, err := l.records(namer, i)
		if err != nil {
			return err
		}
		maps.Copy(all, records)
		names = append(names, fmt.Sprintf("svc-%d.%s.svc.%s", i, namespace(l, i), domain))
	}
	keys := len(all)
	if err := benchrecords.Write(context.Background(), c, all, 10*time.Second); err != nil {
		return err
	}
	fmt.Printf("wrote %d keys for %d services\n", keys, l.services)
	if queryFile == "" {
		return nil
	}
	return writeQueries(queryFile, names)
}

func namespace(l layout, i int) string { return fmt.Sprintf("ns-%d", i/l.perNamespace) }

// records are the keys and values kube2sky writes for service i.
func (l layout) records(namer kube2sky.Namer, i int) (kube2sky.Records, error) {
	svc, eps := l.objects(i)
	out, _, err := namer.ServiceRecords(svc, eps) // Nothing here is skipped: the objects are well formed.
	if err != nil || !l.reverse {
		return out, err
	}
	rev, _, err := namer.ReverseRecords(svc, eps)
	maps.Copy(out, rev)
	return out, err
}

// objects are service i and its endpoints. Service i's share bucket is
// i mod 100: the first headlessPercent buckets are headless, the next
// namedPercent have a named port.
func (l layout) objects(i int) (*v1.Service, *v1.Endpoints) {
	meta := metav1.ObjectMeta{Namespace: namespace(l, i), Name: fmt.Sprintf("svc-%d", i)}
	svc := &v1.Service{ObjectMeta: meta, Spec: v1.ServiceSpec{ClusterIP: fmt.Sprintf("10.%d.%d.%d", 100+i>>16, (i>>8)&255, i&255)}}
	bucket := i % 100
	port := v1.ServicePort{Port: 80, Protocol: v1.ProtocolTCP}
	if bucket >= l.headlessPercent && bucket < l.headlessPercent+l.namedPercent {
		port.Name = "http"
	}
	svc.Spec.Ports = []v1.ServicePort{port}
	if bucket >= l.headlessPercent {
		return svc, nil
	}
	svc.Spec.ClusterIP = v1.ClusterIPNone
	subset := v1.EndpointSubset{Ports: []v1.EndpointPort{{Port: 80, Protocol: v1.ProtocolTCP}}}
	for e := 0; e < l.endpoints; e++ {
		j := i*l.endpoints + e
		subset.Addresses = append(subset.Addresses, v1.EndpointAddress{IP: fmt.Sprintf("172.%d.%d.%d", 16+j>>16, (j>>8)&255, j&255)})
	}
	return svc, &v1.Endpoints{ObjectMeta: meta, Subsets: []v1.EndpointSubset{subset}}
}

func writeQueries(file string, names []string) error {
	rand.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s A\n", n)
	}
	return os.WriteFile(file, []byte(b.String()), 0o644)
}
