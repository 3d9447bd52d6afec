// Command compare is `make bench`: skydns (fed by kube2sky from a real
// kube-apiserver) beside CoreDNS v1.15.0 (its kubernetes plugin on the
// same apiserver, its etcd plugin on the same /skydns records, each with
// and without cache) and a fixed responder (the ceiling), on the same
// machine, in the same run, over the same objects: QPS of each query mix
// as a share of the ceiling, CPU per answered query, latency at a fixed
// rate, peak RSS and time to ready per size, and propagation under churn.
// It writes the raw results as JSON and renders docs/benchmarks.md with
// its SVG plots.
//
// Usage (make bench builds the binaries and runs this):
//
//	go run ./test/bench/compare -sizes 1000,10000,100000 -out docs
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/skypod/skypod/test/bench/session"
)

// config is the command line.
type config struct {
	sizes          []int
	mixes          []string
	servers        []string
	rounds         int
	roundSeconds   int
	latencyQPS     int
	latencySeconds int
	cacheCap       int
	propSize       int // The size propagation is measured at: the largest at or below it.
	propServices   int
	churnPerSecond int
	freshSamples   int
	binDir         string
	coredns        string
	out            string // Where benchmarks.md and benchmarks/ go.
	render         string // A results.json to render again instead of measuring.
}

func parseFlags(args []string, getenv func(string) string) (config, error) {
	var c config
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	sizes := fs.String("sizes", envOr(getenv, "BENCH_SIZES", "1000,10000,100000"), "comma-separated service counts (BENCH_SIZES)")
	mixes := fs.String("mixes", strings.Join(allMixes, ","), "comma-separated query mixes")
	servers := fs.String("servers", strings.Join(specNames(), ","), "comma-separated servers (fixed is always measured)")
	fs.IntVar(&c.rounds, "rounds", envInt(getenv, "BENCH_ROUNDS", 3), "interleaved rounds per server and mix (BENCH_ROUNDS)")
	fs.IntVar(&c.roundSeconds, "round-seconds", envInt(getenv, "BENCH_ROUND_SECONDS", 2), "seconds of each round (BENCH_ROUND_SECONDS)")
	fs.IntVar(&c.latencyQPS, "latency-qps", 5000, "fixed rate of the latency pass")
	fs.IntVar(&c.latencySeconds, "latency-seconds", 3, "seconds of each server's latency pass")
	fs.IntVar(&c.cacheCap, "cache", 10000, "capacity of every cache: skydns -rcache, CoreDNS cache success and denial")
	fs.IntVar(&c.propSize, "propagation-size", 10000, "propagation is measured at the largest size at or below this (0: not at all)")
	fs.IntVar(&c.propServices, "propagation-services", 300, "services created, one at a time, to time propagation")
	fs.IntVar(&c.churnPerSecond, "churn", 20, "other services whose endpoints change each second meanwhile")
	fs.IntVar(&c.freshSamples, "freshness-samples", 5, "services deleted and recreated with a new ClusterIP to time stale answers")
	fs.StringVar(&c.binDir, "bin", envOr(getenv, "SKYPOD_BIN_DIR", "bin"), "directory of skydns, kube2sky, fixedresponder (SKYPOD_BIN_DIR)")
	fs.StringVar(&c.coredns, "coredns", envOr(getenv, "SKYPOD_COREDNS_BIN", ".cache/coredns-v1.15.0"), "CoreDNS binary (SKYPOD_COREDNS_BIN)")
	fs.StringVar(&c.out, "out", "docs", "directory benchmarks.md, benchmarks/*.svg and benchmarks/results.json are written to")
	fs.StringVar(&c.render, "render", "", "render -out's documents again from this results.json (after a template change) instead of measuring")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var err error
	if c.sizes, err = parseSizes(*sizes); err != nil {
		return c, err
	}
	c.mixes, c.servers = splitList(*mixes), withFixed(splitList(*servers))
	return c, c.check()
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func envInt(getenv func(string) string, key string, def int) int {
	if n, err := strconv.Atoi(getenv(key)); err == nil {
		return n
	}
	return def
}

// splitList splits a comma-separated flag, dropping spaces and empty entries.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 100 {
			return nil, fmt.Errorf("size %q: want a count of services, at least 100", f)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// withFixed puts the fixed responder first: every ratio is to it.
func withFixed(servers []string) []string {
	return append([]string{"fixed"}, slices.DeleteFunc(servers, func(s string) bool { return s == "fixed" })...)
}

func specNames() []string {
	var out []string
	for _, sp := range specs() {
		out = append(out, sp.name)
	}
	return out
}

func (c config) check() error {
	known := specsByName()
	for _, s := range c.servers {
		if _, ok := known[s]; !ok {
			return fmt.Errorf("-servers: no server %q (have %s)", s, strings.Join(specNames(), ","))
		}
	}
	for _, m := range c.mixes {
		if !slices.Contains(allMixes, m) {
			return fmt.Errorf("-mixes: no mix %q (have %s)", m, strings.Join(allMixes, ","))
		}
	}
	if len(c.sizes) == 0 || c.rounds < 1 || c.roundSeconds < 1 || c.latencyQPS < 1 {
		return errors.New("need a size, and rounds, round seconds and latency rate of at least 1")
	}
	return nil
}

// usesCoreDNS says whether a CoreDNS server is among those measured.
func (c config) usesCoreDNS() bool {
	return slices.ContainsFunc(c.servers, func(s string) bool { return strings.HasPrefix(s, "coredns") })
}

// bench is one run of the command.
type bench struct {
	s     *session.Session
	c     config
	bins  binaries
	start time.Time
}

func main() {
	c, err := parseFlags(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	s, err := session.New("bench")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	defer s.Unwind(0)
	b := &bench{s: s, c: c, start: time.Now()}
	if c.render != "" {
		b.write(b.readResults(c.render))
		return
	}
	b.bins = b.findBinaries()
	b.write(b.run())
}

// readResults reads a run's results.json.
func (b *bench) readResults(path string) results {
	var r results
	raw, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(raw, &r)
	}
	if err != nil {
		b.s.Fatalf("%s: %v", path, err)
	}
	return r
}
