//go:build integration

package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skypod/skypod/test/harness"
)

// stallBound is how soon after a member stalls skydns must answer a
// record written meanwhile: the monitor's check period and timeout (3 s),
// a leader election when the stalled member led (about 1 s), and slack
// for shared machines. Without the monitor, gRPC's keepalive (10 s at
// least) is what ends a watch on the stalled member: 9-11 s measured.
const stallBound = 8 * time.Second

// TestStalledEtcdMemberSkydnsMovesOn stalls each member of a three-member
// cluster in turn (SIGSTOP: sockets open, no answers) while records are
// written through another, and measures how soon skydns answers them.
func TestStalledEtcdMemberSkydnsMovesOn(t *testing.T) {
	members := harness.StartEtcdCluster(t, 3, nil)
	first := members[0].Client()
	members[0].Put(first, "/skydns/local/cluster/stall/before", `{"host":"192.0.2.1"}`)
	s := startSkydns(t, harness.Servers(members))
	waitA(t, s.Addr, "before.stall.cluster.local.", "192.0.2.1", stallBound)

	for i, stalled := range members {
		writer := members[(i+1)%len(members)]
		c := writer.Client()
		stalled.Pause()
		start := time.Now()
		name, ip := fmt.Sprintf("during%d", i), fmt.Sprintf("192.0.2.%d", 10+i)
		// A write proposed to a stalled leader is lost: retry it until
		// the others have elected a new one.
		harness.Eventually(t, stallBound, "write through "+writer.Name, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := c.Put(ctx, "/skydns/local/cluster/stall/"+name, fmt.Sprintf(`{"host":%q}`, ip))
			return err
		})
		written := time.Since(start)
		waitA(t, s.Addr, name+".stall.cluster.local.", ip, stallBound-time.Since(start))
		t.Logf("member %s stalled: write through %s took %s, skydns answered %s after the stall began",
			stalled.Name, writer.Name, written.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		stalled.Resume()
		stalled.WaitServing() // So the next stall leaves a quorum.
	}
}

// waitA waits for skydns at addr to answer name with ip.
func waitA(t *testing.T, addr, name, ip string, bound time.Duration) {
	t.Helper()
	harness.Eventually(t, bound, "skydns answers "+name, func() error {
		m, err := harness.Exchange(addr, "udp", name, dns.TypeA)
		return harness.WantAnswers(m, err, ip)
	})
}

// TestStalledEtcdMemberKube2skyMovesOn stalls each member in turn while
// a service is created, and measures how soon kube2sky's write of it is
// in etcd.
func TestStalledEtcdMemberKube2skyMovesOn(t *testing.T) {
	members := harness.StartEtcdCluster(t, 3, nil)
	cluster := harness.StartCluster(t)
	grantKube2sky(t, cluster)
	port := harness.FreePort(t)
	pod := &dnsPod{healthz: fmt.Sprintf("http://127.0.0.1:%d", port), kube2skyBin: harness.Binary(t, "kube2sky"), args: []string{
		"--domain=cluster.local", "--etcd-server=" + harness.Servers(members),
		"--kubecfg-file=" + cluster.Kubeconfig(t, harness.Kube2skyToken), fmt.Sprintf("--healthz-port=%d", port)}}
	pod.startKube2sky(t)

	for i, stalled := range members {
		reader := members[(i+1)%len(members)].Client()
		name := fmt.Sprintf("stall-%d", i)
		stalled.Pause()
		start := time.Now()
		must(cluster.Admin.CoreV1().Services("default").Create(context.Background(), &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       v1.ServiceSpec{Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}},
		}, metav1.CreateOptions{}))(t)
		harness.Eventually(t, stallBound+2*time.Second, name+" written", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			resp, err := reader.Get(ctx, "/skydns/local/cluster/svc/default/"+name, clientv3.WithPrefix(), clientv3.WithCountOnly())
			if err != nil || resp.Count == 0 {
				return fmt.Errorf("count %v, err %v", resp, err)
			}
			return nil
		})
		t.Logf("member %s stalled: kube2sky's records of %s in etcd %s after the stall began",
			stalled.Name, name, time.Since(start).Round(time.Millisecond))
		stalled.Resume()
		stalled.WaitServing() // So the next stall leaves a quorum.
	}
}
