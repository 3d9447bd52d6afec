//go:build integration

package test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skypod/skypod/skydns/msg"
	"github.com/skypod/skypod/test/harness"
)

// listedServices is enough services for a list of four pages of skydns's
// 1,000 keys (listPage in skydns/etcd.go).
const listedServices = 3500

// skydns lists a prefix of several pages into one index, and lists it
// again after etcd restarts: every name answers after each list.
func TestPagedListThroughTheBinary(t *testing.T) {
	etcd := harness.StartEtcd(t)
	c := etcd.Client()
	names := writeServices(t, c, listedServices)
	s := startSkydns(t, etcd.URL)
	answersEvery(t, s, names)

	etcd.Stop() // skydns's health probe fails, its watch ends, and it lists again once etcd is back.
	harness.Eventually(t, 20*time.Second, "skydns seeing etcd gone", func() error {
		if up := s.metric(t, "skydns_etcd_watch_up"); up != "0" {
			return fmt.Errorf("skydns_etcd_watch_up %s", up)
		}
		return nil
	})
	etcd.Start()
	harness.Eventually(t, 30*time.Second, "a second list", func() error {
		if lists := s.metric(t, "skydns_etcd_lists_total"); lists != "2" {
			return fmt.Errorf("skydns_etcd_lists_total %s", lists)
		}
		return nil
	})
	answersEvery(t, s, names)
}

// writeServices writes n A records, a hundred a transaction, and returns
// each name with its address.
func writeServices(t *testing.T, c *clientv3.Client, n int) map[string]string {
	t.Helper()
	names := map[string]string{}
	var ops []clientv3.Op
	for i := range n {
		name, ip := fmt.Sprintf("svc-%d.listed.svc.cluster.local.", i), fmt.Sprintf("10.%d.%d.%d", 100+i>>16, i>>8&255, i&255)
		names[name] = ip
		ops = append(ops, clientv3.OpPut(msg.Path("x."+name, msg.DefaultPrefix), fmt.Sprintf(`{"host":%q}`, ip)))
		if len(ops) == 100 || i == n-1 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := c.Txn(ctx).Then(ops...).Commit()
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	return names
}

func answersEvery(t *testing.T, s *skydnsProc, names map[string]string) {
	t.Helper()
	for name, ip := range names {
		m, err := harness.Exchange(s.Addr, "udp", name, dns.TypeA)
		if err := harness.WantAnswers(m, err, ip); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}
