package main

import (
	"context"
	"strconv"
	"time"

	"github.com/miekg/dns"
)

// cpuTimeout is how long one measured query may take: long enough for the
// most expensive query of an unbounded build.
const cpuTimeout = time.Minute

// measureCPU sends n queries for name one after another and returns the
// CPU skydns spent on each, on average, from /proc (10 ms resolution, so
// cheap queries read as 0 unless n is large).
func measureCPU(ctx context.Context, s *session, d *skydns, name string, n int) cpuCost {
	c := &dns.Client{Net: "udp", Timeout: cpuTimeout, UDPSize: dns.DefaultMsgSize}
	cost := cpuCost{name: name, rcode: "-", answers: "-"}
	before, start := d.proc.CPUSeconds(s), time.Now()
	for range n {
		m := new(dns.Msg).SetQuestion(name, dns.TypeA)
		m.SetEdns0(dns.DefaultMsgSize, false)
		qctx, cancel := context.WithTimeout(ctx, cpuTimeout)
		r, _, err := c.ExchangeContext(qctx, m, d.addr)
		cancel()
		if err != nil {
			cost.fail++
			continue
		}
		cost.rcode, cost.answers = dns.RcodeToString[r.Rcode], strconv.Itoa(len(r.Answer))
	}
	perQuery := func(seconds float64) time.Duration { return time.Duration(seconds / float64(n) * float64(time.Second)) }
	cost.cpu = perQuery(d.proc.CPUSeconds(s) - before)
	cost.wall = perQuery(time.Since(start).Seconds())
	return cost
}
