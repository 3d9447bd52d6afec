package main

import (
	"context"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// victim is a well-behaved client: in-zone A queries at a steady rate,
// each given up after a timeout.
type victim struct {
	addr    string
	network string // udp or tcp
	qps     int
	timeout time.Duration
}

// outcome is what the victim saw over one period: each query's latency,
// a failed one (no reply in time, or no answer) as +Inf.
type outcome struct{ latencies []float64 }

// run sends queries for d and waits for the last one.
func (v victim) run(ctx context.Context, d time.Duration) outcome {
	c := &dns.Client{Net: v.network, Timeout: v.timeout}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var out outcome
	tick := time.NewTicker(time.Second / time.Duration(v.qps))
	defer tick.Stop()
	end := time.After(d)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-end:
			done = true
		case <-tick.C:
			wg.Go(func() {
				l := v.query(ctx, c)
				mu.Lock()
				out.latencies = append(out.latencies, l)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	slices.Sort(out.latencies)
	return out
}

// query is one query's latency in seconds, +Inf when it failed.
func (v victim) query(ctx context.Context, c *dns.Client) float64 {
	m := new(dns.Msg).SetQuestion(victimName, dns.TypeA)
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	start := time.Now()
	r, _, err := c.ExchangeContext(ctx, m, v.addr)
	if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
		return math.Inf(1)
	}
	return time.Since(start).Seconds()
}

// okRate is the share of queries answered, in percent.
func (o outcome) okRate() float64 {
	if len(o.latencies) == 0 {
		return 0
	}
	ok, _ := slices.BinarySearch(o.latencies, math.Inf(1))
	return 100 * float64(ok) / float64(len(o.latencies))
}

// quantile is the q-th latency, a failed query counting as the slowest.
func (o outcome) quantile(q float64) float64 {
	if len(o.latencies) == 0 {
		return math.Inf(1)
	}
	return o.latencies[min(int(q*float64(len(o.latencies))), len(o.latencies)-1)]
}
