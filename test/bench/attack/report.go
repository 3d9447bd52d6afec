package main

import (
	"fmt"
	"io"
	"math"
	"time"
)

// report prints the three tables: the victim, skydns and the attacker
// during each attack, and the CPU cost of single queries.
func report(w io.Writer, c config, results []result) {
	fmt.Fprintf(w, "\n### Victim: in-zone A at %d qps, %s timeout; alone %s, then under attack %s (a failed query counts as slowest)\n\n",
		c.victimQPS, c.victimTimeout, c.baseline, c.attackFor)
	fmt.Fprintln(w, "| attack | build | alone ok | alone p50 | alone p99 | attacked ok | attacked p50 | attacked p99 | p99 / alone |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %s | %.1f%% | %s | %s | %.1f%% | %s | %s | %s |\n", r.scenario, r.build,
			r.alone.okRate(), ms(r.alone.quantile(0.5)), ms(r.alone.quantile(0.99)),
			r.attacked.okRate(), ms(r.attacked.quantile(0.5)), ms(r.attacked.quantile(0.99)),
			ratio(r.attacked.quantile(0.99), r.alone.quantile(0.99)))
	}
	fmt.Fprintln(w, "\n### skydns and the attacker during the attack")
	fmt.Fprintln(w, "\n| attack | build | RSS loaded | peak RSS | peak goroutines | peak fds | sent | replies | largest reply | bytes in / out | TCP held at end / closed |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		t := r.traffic
		fmt.Fprintf(w, "| %s | %s | %.0f MiB | %.0f MiB | %.0f | %d | %d | %d | %d B | %s | %d / %d |\n", r.scenario, r.build,
			r.rssIdle, r.peak.rssMiB, r.peak.goroutines, r.peak.files, t.sent.Load(), t.replies.Load(), t.maxReply.Load(),
			ratio(float64(t.bytesIn.Load()), float64(t.bytesOut.Load())), t.tcpHeld, t.tcpClosed.Load())
	}
	reportCPU(w, c, results)
}

func reportCPU(w io.Writer, c config, results []result) {
	fmt.Fprintf(w, "\n### CPU per query (%d sequential A queries each, UDP, EDNS0 4096)\n\n", c.cpuQueries)
	fmt.Fprintln(w, "| query | build | CPU per query | wall per query | rcode | answers | failed |")
	fmt.Fprintln(w, "|---|---|---:|---:|---|---:|---:|")
	for _, r := range results {
		for _, q := range r.cpu {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %d |\n", q.name, r.build,
				round(q.cpu), round(q.wall), q.rcode, q.answers, q.fail)
		}
	}
}

// ms renders seconds as milliseconds; +Inf (a failed query) as "failed".
func ms(seconds float64) string {
	if math.IsInf(seconds, 1) {
		return "failed"
	}
	return fmt.Sprintf("%.2f ms", seconds*1000)
}

func ratio(a, b float64) string {
	if math.IsInf(a, 0) || math.IsInf(b, 0) || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f×", a/b)
}

func round(d time.Duration) time.Duration {
	if d > time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(100 * time.Microsecond)
}
