// Command etcdchurn measures etcd's database after a stretch of Endpoints
// churn written in kube2sky's layout, without compaction and with the
// compaction every etcd of the project runs (periodic, 5 minutes). It
// starts its own etcd for each run and writes as fast as etcd takes the
// writes: time is simulated, -rate updates to one simulated second, so an
// hour of churn takes a minute or two, and the periodic compactor is
// emulated by compacting, every retention, to the revision of one
// retention before (what etcd's does, in real time).
package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skypod/skypod/kube2sky"
	"github.com/skypod/skypod/skydns/msg"
)

// churn is one run's shape.
type churn struct {
	services, endpoints int
	rate                int           // Endpoints updates per simulated second.
	length, retention   time.Duration // Simulated; retention 0 is no compaction.
}

func main() {
	bin := flag.String("etcd-bin", ".cache/etcd-v3.6.6", "etcd binary")
	var c churn
	flag.IntVar(&c.services, "services", 1000, "headless services churned")
	flag.IntVar(&c.endpoints, "endpoints", 5, "endpoint addresses of each")
	flag.IntVar(&c.rate, "rate", 10, "Endpoints updates per simulated second, across the cluster")
	flag.DurationVar(&c.length, "length", time.Hour, "simulated time churned")
	retention := flag.Duration("retention", 5*time.Minute, "periodic compaction retention for the compacted run")
	flag.Parse()
	fmt.Printf("%d headless services x %d endpoints, %d updates/s for %s (%d updates)\n",
		c.services, c.endpoints, c.rate, c.length, c.updates())
	fmt.Println("| compaction | revisions | db size | in use |")
	fmt.Println("|---|---|---|---|")
	for _, r := range []time.Duration{0, *retention} {
		c.retention = r
		if err := c.run(*bin); err != nil {
			fmt.Fprintln(os.Stderr, "etcdchurn:", err)
			os.Exit(1)
		}
	}
}

func (c churn) updates() int { return c.rate * int(c.length/time.Second) }

// run starts a fresh etcd, loads the services, churns them and prints the
// database's status.
func (c churn) run(bin string) error {
	cli, stop, err := startEtcd(bin)
	if err != nil {
		return err
	}
	defer stop()
	ctx := context.Background()
	namer := kube2sky.Namer{Domain: "cluster.local.", Prefix: msg.DefaultPrefix}
	current := make([]kube2sky.Records, c.services)
	for i := range current {
		current[i] = records(namer, i, c.endpoints, 0)
		if _, err := apply(ctx, cli, kube2sky.Records{}, current[i]); err != nil {
			return err
		}
	}
	if err := c.churn(ctx, cli, namer, current); err != nil {
		return err
	}
	st, err := cli.Status(ctx, cli.Endpoints()[0])
	if err != nil {
		return err
	}
	mode := "none"
	if c.retention > 0 {
		mode = "periodic " + c.retention.String()
	}
	fmt.Printf("| %s | %d | %.1f MiB | %.1f MiB |\n", mode, st.Header.Revision, mib(st.DbSize), mib(st.DbSizeInUse))
	return nil
}

// churn moves one endpoint of one service per update, round robin, and
// compacts as the periodic compactor would.
func (c churn) churn(ctx context.Context, cli *clientv3.Client, namer kube2sky.Namer, current []kube2sky.Records) error {
	perRetention := c.rate * int(c.retention/time.Second)
	var revs []int64 // The revision after each update.
	for u := range c.updates() {
		i := u % c.services
		next := records(namer, i, c.endpoints, u/c.services+1)
		rev, err := apply(ctx, cli, current[i], next)
		if err != nil {
			return err
		}
		current[i] = next
		revs = append(revs, rev)
		if perRetention > 0 && (u+1)%perRetention == 0 && u+1 > perRetention {
			if _, err := cli.Compact(ctx, revs[u-perRetention], clientv3.WithCompactPhysical()); err != nil {
				return err
			}
		}
	}
	return nil
}

// records are what kube2sky writes for headless service i whose endpoint
// round (of `endpoints` addresses) has moved gen times: one address moves
// each generation.
func records(namer kube2sky.Namer, i, endpoints, gen int) kube2sky.Records {
	meta := metav1.ObjectMeta{Namespace: "churn", Name: fmt.Sprintf("svc-%d", i)}
	svc := &v1.Service{ObjectMeta: meta, Spec: v1.ServiceSpec{ClusterIP: v1.ClusterIPNone,
		Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}}}
	subset := v1.EndpointSubset{Ports: []v1.EndpointPort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}}
	for e := range endpoints {
		moves := gen / endpoints // Times address e has moved by generation gen.
		if e < gen%endpoints {
			moves++
		}
		j := (i*endpoints+e)*4096 + moves%4096
		subset.Addresses = append(subset.Addresses, v1.EndpointAddress{IP: fmt.Sprintf("10.%d.%d.%d", (j>>16)&255, (j>>8)&255, j&255)})
	}
	eps := &v1.Endpoints{ObjectMeta: meta, Subsets: []v1.EndpointSubset{subset}}
	out, _, _ := namer.ServiceRecords(svc, eps) // Well formed: nothing skipped.
	rev, _, _ := namer.ReverseRecords(svc, eps)
	maps.Copy(out, rev)
	return out
}

// apply writes the difference from old to next in one transaction, as
// kube2sky does for one owner, and returns its revision.
func apply(ctx context.Context, cli *clientv3.Client, old, next kube2sky.Records) (int64, error) {
	var ops []clientv3.Op
	for k, v := range next {
		if old[k] != v {
			ops = append(ops, clientv3.OpPut(k, v))
		}
	}
	for k := range old {
		if _, ok := next[k]; !ok {
			ops = append(ops, clientv3.OpDelete(k))
		}
	}
	resp, err := cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// startEtcd runs a fresh etcd with the project's quota and no automatic
// compaction (this program compacts), and returns a client and its stop.
func startEtcd(bin string) (*clientv3.Client, func(), error) {
	dir, err := os.MkdirTemp("", "etcdchurn")
	if err != nil {
		return nil, nil, err
	}
	client, peer := freeURL(), freeURL()
	cmd := exec.Command(bin, "--data-dir", filepath.Join(dir, "data"), "--name", "churn",
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "churn="+peer, "--log-level", "error", "--quota-backend-bytes", "268435456")
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = os.RemoveAll(dir) }
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{client}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		stop()
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, "/", clientv3.WithCountOnly()); err != nil {
		stop()
		return nil, nil, fmt.Errorf("etcd did not start: %w", err)
	}
	return cli, func() { cli.Close(); stop() }, nil
}

// freeURL is a loopback URL on a port free at the moment of asking; if
// none is, etcd's own start fails and says so.
func freeURL() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "http://127.0.0.1:0"
	}
	defer ln.Close()
	return "http://" + ln.Addr().String()
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
