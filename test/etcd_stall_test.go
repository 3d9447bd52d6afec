//go:build integration

package test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

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
	var urls []string
	for _, m := range members {
		urls = append(urls, m.URL)
	}
	first := members[0].Client()
	members[0].Put(first, "/skydns/local/cluster/stall/before", `{"host":"192.0.2.1"}`)
	s := startSkydns(t, strings.Join(urls, ","))
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
