package main

import (
	"path/filepath"
	"strconv"

	"github.com/skypod/skypod/test/bench/benchrecords"
)

// round is one server's dnsperf round on one mix.
type round struct {
	perfResult
	CPU float64 // Seconds the server spent, user and system, over the round.
}

// mixResult is one server on one mix, over all rounds.
type mixResult struct {
	QPS         float64        // Completed over run time, all rounds.
	RoundQPS    []float64      // Each round's.
	Ratio       float64        // Median of per-round QPS ratios to the fixed responder's round of the same turn.
	CPUPerQuery float64        // Microseconds of CPU per answered query.
	Lost        int            // Queries lost, all rounds.
	Rcodes      map[string]int // Of completed queries, all rounds.
}

// measureMixes runs the interleaved rounds: for each mix, round after
// round, each server in turn (as bench-dns.sh does), so that drift in the
// machine's speed hits all alike. It returns each server's result per mix.
func (b *bench) measureMixes(servers []*server, files map[string]string) map[string]map[string]*mixResult {
	c, sp := b.c, specsByName()
	out := map[string]map[string]*mixResult{}
	for _, d := range servers { // Unmeasured: first-touch costs and the CPU's clock settle.
		b.loadRound(d, files[mixA])
	}
	for _, mix := range c.mixes {
		rounds := map[string][]round{}
		for r := range c.rounds {
			b.s.Logf(">> %s: round %d/%d, %ds a server", mix, r+1, c.rounds, c.roundSeconds)
			for _, d := range servers {
				if sp[d.name].runs(mix) {
					rounds[d.name] = append(rounds[d.name], b.loadRound(d, files[mix]))
				}
			}
		}
		out[mix] = summarize(rounds)
	}
	return out
}

// loadRound is one saturating dnsperf round against d, with d's CPU time
// over it from /proc.
func (b *bench) loadRound(d *server, queries string) round {
	before := d.proc.CPUSeconds(b.s)
	r, _, err := dnsperf(loadCore, d.addr, queries, "-l", strconv.Itoa(b.c.roundSeconds), "-c", "4", "-q", "200")
	if err != nil {
		b.s.Fatalf("%s: %v", d.name, err)
	}
	return round{perfResult: r, CPU: d.proc.CPUSeconds(b.s) - before}
}

// summarize turns each server's rounds into its result, its rounds paired
// with the fixed responder's.
func summarize(rounds map[string][]round) map[string]*mixResult {
	out := map[string]*mixResult{}
	fixed := rounds["fixed"]
	for name, rs := range rounds {
		m := &mixResult{Rcodes: map[string]int{}}
		var completed int
		var seconds, cpu float64
		var ratios []float64
		for i, r := range rs {
			completed, seconds, cpu = completed+r.Completed, seconds+r.Seconds, cpu+r.CPU
			m.Lost += r.Lost
			m.RoundQPS = append(m.RoundQPS, r.QPS())
			for k, v := range r.Rcodes {
				m.Rcodes[k] += v
			}
			if i < len(fixed) && fixed[i].QPS() > 0 {
				ratios = append(ratios, r.QPS()/fixed[i].QPS())
			}
		}
		if seconds > 0 {
			m.QPS = float64(completed) / seconds
		}
		if completed > 0 {
			m.CPUPerQuery = cpu / float64(completed) * 1e6
		}
		m.Ratio = median(ratios)
		out[name] = m
	}
	return out
}

// latencyResult is a server's latency at a fixed rate, in milliseconds.
type latencyResult struct {
	P50, P90, P99, P999 float64
	Answered, Lost      int
}

// measureLatency runs the in-zone A mix at c.latencyQPS against each
// server in turn, with every query's latency.
func (b *bench) measureLatency(servers []*server, queries string) map[string]latencyResult {
	c, out := b.c, map[string]latencyResult{}
	for _, d := range servers {
		r, raw, err := dnsperf(loadCore, d.addr, queries, "-l", strconv.Itoa(c.latencySeconds), "-Q", strconv.Itoa(c.latencyQPS), "-v")
		if err != nil {
			b.s.Fatalf("%s: %v", d.name, err)
		}
		v := latencies(raw)
		ms := func(p float64) float64 { return percentile(v, p) * 1000 }
		out[d.name] = latencyResult{P50: ms(50), P90: ms(90), P99: ms(99), P999: ms(99.9), Answered: r.Completed, Lost: r.Lost}
	}
	return out
}

// writeMixFiles writes each mix's dnsperf file into dir.
func (b *bench) writeMixFiles(dir string, l benchrecords.Layout) map[string]string {
	files := map[string]string{}
	for _, mix := range allMixes {
		path := filepath.Join(dir, mix+".queries")
		if err := writeLines(path, mixQueries(mix, l, "cluster.local.", uint64(l.Services))); err != nil {
			b.s.Fatal(err)
		}
		files[mix] = path
	}
	return files
}

// peakRSS is each process's VmHWM, in MiB.
func (b *bench) peakRSS(servers []*server) map[string]float64 {
	out := map[string]float64{}
	for _, d := range servers {
		out[d.name] = d.proc.PeakRSSMiB(b.s)
	}
	return out
}
