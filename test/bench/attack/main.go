// Command attack measures skydns under the attacks of issue #9, each build
// given with -skydns against the same records in the same run: a victim
// client's in-zone queries alone and under the attack (success rate, p50
// and p99 latency), skydns's peak RSS, goroutines and descriptors during
// the attack, what the attacker sent and got back, and the CPU one
// expensive query costs. It starts a real etcd per scenario and each
// skydns build as a process, with fake upstreams on loopback, and prints
// markdown tables.
//
// Usage (make bench-attack builds bin/skydns and runs this):
//
//	go run ./test/bench/attack -skydns old=/tmp/attack-old/skydns -skydns current=bin/skydns
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// config is the command line.
type config struct {
	builds        []build
	only          map[string]bool
	baseline      time.Duration
	attackFor     time.Duration
	victimQPS     int
	victimTimeout time.Duration
	workers       int
	attackTimeout time.Duration
	services      int
	ampQPS        int
	forwardQPS    int
	tcpClients    int
	tcpPipeline   int
	tcpConns      int
	cpuQueries    int
}

// build is one skydns binary under measure.
type build struct{ label, path string }

// buildList is the repeatable -skydns flag: label=path, or a path.
type buildList struct{ list *[]build }

func (b buildList) String() string { return "" }
func (b buildList) Set(v string) error {
	label, path, ok := strings.Cut(v, "=")
	if !ok {
		label, path = fmt.Sprintf("build%d", len(*b.list)+1), v
	}
	*b.list = append(*b.list, build{label: label, path: path})
	return nil
}

func parseFlags(args []string) (config, error) {
	c := config{only: map[string]bool{}}
	fs := flag.NewFlagSet("attack", flag.ContinueOnError)
	fs.Var(buildList{&c.builds}, "skydns", "skydns binary to measure, label=path; repeat to compare builds in one run (first is the reference)")
	only := fs.String("only", "", "comma-separated scenarios to run (default all): "+scenarioNames())
	fs.DurationVar(&c.baseline, "baseline", 5*time.Second, "how long the victim runs alone")
	fs.DurationVar(&c.attackFor, "attack", 10*time.Second, "how long the victim runs under each attack")
	fs.IntVar(&c.victimQPS, "victim-qps", 200, "the victim's in-zone A queries per second")
	fs.DurationVar(&c.victimTimeout, "victim-timeout", 2*time.Second, "how long the victim waits for each reply")
	fs.IntVar(&c.workers, "workers", 8, "concurrent attackers for the expensive-query attacks (each sends when answered or timed out)")
	fs.DurationVar(&c.attackTimeout, "attack-timeout", 5*time.Second, "how long such an attacker waits for each reply")
	fs.IntVar(&c.services, "services", 100000, "services of the wildcard scenario")
	fs.IntVar(&c.ampQPS, "amp-qps", 500, "queries per second of the amplification attack")
	fs.IntVar(&c.forwardQPS, "forward-qps", 1000, "queries per second of the forwarding and odd-request floods")
	fs.IntVar(&c.tcpClients, "tcp-clients", 32, "TCP clients that ask for a large answer and never read")
	fs.IntVar(&c.tcpPipeline, "tcp-pipeline", 128, "queries each such client sends (it never reads); miekg/dns serves 128 per connection")
	fs.IntVar(&c.tcpConns, "tcp-conns", 1500, "idle TCP connections the flood keeps open (skydns's --tcp-max-conns is 1024)")
	fs.IntVar(&c.cpuQueries, "cpu-queries", 3, "sequential queries per name whose CPU cost is measured")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	for _, name := range strings.Split(*only, ",") {
		if name != "" {
			c.only[name] = true
		}
	}
	return c, c.check()
}

// check rejects a missing binary or an unknown scenario before anything starts.
func (c config) check() error {
	if len(c.builds) == 0 {
		return errors.New("no -skydns binary given")
	}
	for _, b := range c.builds {
		if st, err := os.Stat(b.path); err != nil || st.Mode()&0o111 == 0 || st.IsDir() {
			return fmt.Errorf("-skydns %s=%s: missing or not executable (make build writes bin/skydns)", b.label, b.path)
		}
	}
	known := scenarioNames()
	for name := range c.only {
		if !strings.Contains(","+known+",", ","+name+",") {
			return fmt.Errorf("-only: no scenario %q (have %s)", name, known)
		}
	}
	if c.victimQPS < 1 || c.workers < 1 || c.ampQPS < 1 || c.forwardQPS < 1 {
		return errors.New("rates and worker counts must be at least 1")
	}
	return nil
}

func scenarioNames() string {
	var names []string
	for _, sc := range scenarios() {
		names = append(names, sc.name)
	}
	return strings.Join(names, ",")
}

func main() {
	c, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-attack:", err)
		os.Exit(2)
	}
	s, err := newSession()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-attack:", err)
		os.Exit(1)
	}
	defer s.Unwind(0)
	report(os.Stdout, c, run(s, c))
}
