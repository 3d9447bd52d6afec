package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/skypod/skypod/test/bench/benchrecords"
	"github.com/skypod/skypod/test/harness"
)

// result is one build under one scenario.
type result struct {
	scenario, build string
	alone, attacked outcome
	rssIdle         float64 // MiB, once the records are loaded.
	peak            peaks
	traffic         *traffic
	cpu             []cpuCost
}

// cpuCost is what one query for name cost skydns, averaged over a few.
type cpuCost struct {
	name           string
	cpu, wall      time.Duration
	rcode, answers string
	fail           int
}

// runner holds what every scenario shares: the fake upstreams.
type runner struct {
	s                    *session
	c                    config
	blackhole, answering string
}

// run measures every scenario with every build.
func run(s *session, c config) []result {
	harness.EtcdBinary(s) // A missing etcd ends the run before anything starts.
	ctx, cancel := context.WithCancel(context.Background())
	s.Cleanup(cancel)
	r := runner{s: s, c: c, blackhole: blackhole(ctx, s), answering: answering(ctx, s)}
	var out []result
	for _, sc := range scenarios() {
		if len(c.only) > 0 && !c.only[sc.name] {
			continue
		}
		out = append(out, r.scenario(ctx, sc)...)
	}
	return out
}

// scenario loads the scenario's records into a fresh etcd and measures
// each build against them.
func (r runner) scenario(ctx context.Context, sc scenario) []result {
	defer r.s.Unwind(r.s.Mark())
	etcd := harness.StartEtcd(r.s)
	records := sc.records(r.c)
	progress("%s: writing %d keys to etcd", sc.name, len(records))
	if err := benchrecords.Write(ctx, etcd.Client(), records, 30*time.Second); err != nil {
		r.s.Fatalf("%s: %v", sc.name, err)
	}
	var out []result
	for _, b := range r.c.builds {
		out = append(out, r.measure(ctx, sc, b, etcd.URL))
	}
	return out
}

// measure runs one build: the CPU cost of the scenario's queries, the
// victim alone, then the victim under the attack.
func (r runner) measure(ctx context.Context, sc scenario, b build, etcdURL string) result {
	defer r.s.Unwind(r.s.Mark())
	upstream := r.answering
	if sc.blackhole {
		upstream = r.blackhole
	}
	d := startSkydns(r.s, b.path, etcdURL, upstream)
	res := result{scenario: sc.name, build: b.label, traffic: &traffic{}, rssIdle: d.proc.StatusMiB(r.s, "VmRSS")}
	for _, name := range sc.cpu {
		progress("%s/%s: CPU of %d queries for %s", sc.name, b.label, r.c.cpuQueries, name)
		res.cpu = append(res.cpu, measureCPU(ctx, r.s, d, name, r.c.cpuQueries))
	}
	v := victim{addr: d.addr, network: sc.victimNet, qps: r.c.victimQPS, timeout: r.c.victimTimeout}
	progress("%s/%s: victim alone for %s", sc.name, b.label, r.c.baseline)
	res.alone = v.run(ctx, r.c.baseline)
	progress("%s/%s: victim under attack for %s", sc.name, b.label, r.c.attackFor)
	res.attacked, res.peak = r.underAttack(ctx, d, v, sc.attack(r.c), res.traffic)
	return res
}

// underAttack starts the attacker, lets it build up for a second, runs the
// victim, and stops the attacker, sampling skydns all along.
func (r runner) underAttack(ctx context.Context, d *skydns, v victim, a attack, t *traffic) (outcome, peaks) {
	stop := d.sample(r.s, 100*time.Millisecond)
	actx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { a.run(actx, r.s, d.addr, t) })
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
	}
	o := v.run(ctx, r.c.attackFor)
	t.tcpHeld = d.tcpConns() // The victim's are closed: these are the attacker's.
	cancel()
	wg.Wait()
	return o, stop()
}

func progress(format string, a ...any) {
	fmt.Fprintf(os.Stderr, ">> "+format+"\n", a...)
}
