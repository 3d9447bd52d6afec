package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// perfResult is what one dnsperf run reports.
type perfResult struct {
	Completed, Lost int
	Seconds         float64
	Rcodes          map[string]int // NOERROR, NXDOMAIN, ...: of the completed.
}

// QPS is the completed queries a second.
func (r perfResult) QPS() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.Completed) / r.Seconds
}

// parsePerf reads dnsperf's summary: "Queries completed: N (..)",
// "Queries lost: N", "Run time (s): S", "Response codes: NOERROR 12 (..),
// NXDOMAIN 3 (..)".
func parsePerf(out string) (perfResult, error) {
	r := perfResult{Rcodes: map[string]int{}}
	var seen int
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "Queries" && f[1] == "completed:":
			r.Completed, seen = atoi(f[2]), seen+1
		case len(f) >= 3 && f[0] == "Queries" && f[1] == "lost:":
			r.Lost = atoi(f[2])
		case len(f) >= 4 && strings.Join(f[:3], " ") == "Run time (s):":
			r.Seconds, _ = strconv.ParseFloat(f[3], 64)
			seen++
		case len(f) >= 2 && f[0] == "Response" && f[1] == "codes:":
			parseRcodes(strings.Join(f[2:], " "), r.Rcodes)
		}
	}
	if seen < 2 {
		return r, fmt.Errorf("no dnsperf summary in:\n%s", out)
	}
	return r, nil
}

// parseRcodes reads "NOERROR 12 (80.00%), NXDOMAIN 3 (20.00%)".
func parseRcodes(s string, into map[string]int) {
	for _, part := range strings.Split(s, ",") {
		if f := strings.Fields(part); len(f) >= 2 {
			into[f[0]] += atoi(f[1])
		}
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(strings.TrimSuffix(s, ","))
	return n
}

// dnsperf runs the load generator pinned to core, against addr
// ("127.0.0.1:port") with the query file, and returns its summary. extra
// are further flags: -l, -Q, -v.
func dnsperf(core, addr, queries string, extra ...string) (perfResult, string, error) {
	host, port, _ := strings.Cut(addr, ":")
	args := append([]string{"-c", core, "dnsperf", "-s", host, "-p", port, "-d", queries}, extra...)
	out, err := exec.Command("taskset", args...).CombinedOutput()
	if err != nil {
		return perfResult{}, string(out), fmt.Errorf("dnsperf %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	r, err := parsePerf(string(out))
	return r, string(out), err
}

// latencies reads the per-query lines of dnsperf -v ("> NOERROR name
// TYPE 0.000123"), in seconds, sorted; lost queries have none.
func latencies(out string) []float64 {
	var v []float64
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[0] == ">" {
			if s, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				v = append(v, s)
			}
		}
	}
	slices.Sort(v)
	return v
}

// percentile is the p-th percentile of sorted values, by rank; 0 of none.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p/100))]
}

// median of values (unsorted), the mean of the middle two of an even count.
func median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	v := slices.Sorted(slices.Values(values))
	if n := len(v); n%2 == 1 {
		return v[n/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// writeLines writes lines, one a line, to path.
func writeLines(path string, lines []string) error {
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}
