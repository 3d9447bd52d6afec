package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/skypod/skypod/test/bench/benchrecords"
	"github.com/skypod/skypod/test/benchload"
	"github.com/skypod/skypod/test/harness"
)

// results are everything a run measured, written as JSON.
type results struct {
	Date            string
	Command         string
	Nproc           int
	CPU             string
	Versions        map[string]string
	Rounds          int
	RoundSeconds    int
	LatencyQPS      int
	LatencySeconds  int
	CacheCapacity   int
	Servers         []serverInfo
	Sizes           []sizeResult
	Propagation     *propagationResult `json:",omitempty"`
	DurationMinutes float64
}

type serverInfo struct{ Name, About string }

// sizeResult is what one size measured.
type sizeResult struct {
	Services       int
	Pods           int     // Running, one behind each endpoint address.
	LoadSeconds    float64 // Writing the objects into the apiserver's etcd, until it served them.
	Kube2skySync   float64 // Seconds from kube2sky's start to /readiness (every record in etcd).
	Kube2skyRSS    float64
	Ready          map[string]float64 // Seconds from a server's start to ready.
	RSS            map[string]float64 // Peak RSS, MiB, after every mix.
	CoreDNSFormula float64            // (pods + services)/1000 + 54, MB: CoreDNS's published estimate.
	QueryCounts    map[string]int     // Lines of each mix's file.
	Mixes          map[string]map[string]*mixResult
	Latency        map[string]latencyResult
}

// findBinaries checks the programs before anything starts.
func (b *bench) findBinaries() binaries {
	bins := binaries{
		skydns: filepath.Join(b.c.binDir, "skydns"), kube2sky: filepath.Join(b.c.binDir, "kube2sky"),
		fixed: filepath.Join(b.c.binDir, "fixedresponder"), coredns: b.c.coredns,
	}
	check := []string{bins.skydns, bins.kube2sky, bins.fixed}
	if b.c.usesCoreDNS() {
		check = append(check, bins.coredns)
	}
	for _, p := range check {
		if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
			b.s.Fatalf("%s is missing or not executable (make build; make coredns, or SKYPOD_COREDNS_BIN)", p)
		}
	}
	for _, tool := range []string{"dnsperf", "taskset"} {
		harness.Tool(b.s, tool)
	}
	if runtime.NumCPU() < 2 {
		b.s.Fatal("needs 2 cores: servers on core 0, dnsperf on core 1")
	}
	return bins
}

// run measures every size, then stamps the run.
func (b *bench) run() results {
	res := results{
		Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), Command: commandLine(os.Args[1:], os.Getenv),
		Nproc: runtime.NumCPU(), CPU: cpuModel(), Versions: b.versions(),
		Rounds: b.c.rounds, RoundSeconds: b.c.roundSeconds, LatencyQPS: b.c.latencyQPS,
		LatencySeconds: b.c.latencySeconds, CacheCapacity: b.c.cacheCap,
	}
	for _, sp := range specs() {
		if slices.Contains(b.c.servers, sp.name) {
			res.Servers = append(res.Servers, serverInfo{sp.name, sp.about})
		}
	}
	prop := b.propagationSize()
	for _, n := range b.c.sizes {
		size, p := b.runSize(n, n == prop)
		res.Sizes = append(res.Sizes, size)
		if p != nil {
			res.Propagation = p
		}
	}
	res.DurationMinutes = time.Since(b.start).Minutes()
	return res
}

// propagationSize is the size propagation is measured at: the largest
// at or below -propagation-size, or 0.
func (b *bench) propagationSize() int {
	at := 0
	for _, n := range b.c.sizes {
		if n <= b.c.propSize {
			at = n
		}
	}
	return at
}

// layoutOf is the services of a size: 10% headless with five endpoints,
// 10% with a named port, 5,000 to a namespace.
func layoutOf(n int) benchrecords.Layout {
	return benchrecords.Layout{Services: n, PerNamespace: 5000, HeadlessPercent: 10, Endpoints: 5, NamedPercent: 10}
}

// runSize starts a cluster holding n services, the pod and every server,
// measures them, and stops everything it started.
func (b *bench) runSize(n int, propagation bool) (sizeResult, *propagationResult) {
	defer b.s.Unwind(b.s.Mark())
	b.s.Logf(">> %d services: starting etcd and kube-apiserver", n)
	res := sizeResult{Services: n, Ready: map[string]float64{}, QueryCounts: map[string]int{}}
	cluster := harness.StartClusterWith(b.s, harness.ClusterOptions{
		ServiceCIDR: "10.0.0.0/12", EtcdFlags: []string{"--quota-backend-bytes=8589934592", "--unsafe-no-fsync"},
	})
	l := layoutOf(n)
	start := time.Now()
	benchload.LoadWith(b.s, cluster, l, 30*time.Minute, benchload.Options{EndpointSlices: true, Pods: true})
	res.LoadSeconds = time.Since(start).Seconds()
	b.s.Logf(">> loaded %d services in %.1fs; starting kube2sky", n, res.LoadSeconds)
	e := env{s: b.s, bins: b.bins, etcdURL: harness.StartEtcd(b.s).URL, cacheCap: b.c.cacheCap,
		kubeconfig: cluster.Kubeconfig(b.s, harness.AdminToken)}
	k2s := b.startKube2sky(e, &res)
	e.upstream = startUpstream(e)
	servers := b.startServers(e, &res)
	files := b.writeMixFiles(b.s.TempDir(), l)
	for mix, f := range files {
		res.QueryCounts[mix] = countLines(f)
	}
	res.Mixes = b.measureMixes(servers, files)
	b.s.Logf(">> latency at %d qps", b.c.latencyQPS)
	res.Latency = b.measureLatency(servers, files[mixA])
	res.RSS = b.peakRSS(servers)
	res.Kube2skyRSS = k2s.PeakRSSMiB(b.s)
	res.Pods = benchload.PodCount(l)
	res.CoreDNSFormula = float64(res.Pods+n)/1000 + 54
	if !propagation {
		return res, nil
	}
	if tmpfs := b.startTmpfsPod(e); tmpfs != nil {
		servers = append(servers, tmpfs)
	}
	return res, b.measurePropagation(cluster, l, servers)
}

// tmpfsPodServer is skydns fed by a kube2sky of its own through an etcd
// whose data directory is on tmpfs, as an emptyDir of medium Memory would
// give the pod's etcd: its writes wait for no disk. Timed beside skydns
// in the propagation phase only, it shows what the pod's etcd commit
// (an fsync here) adds to skydns's path.
const tmpfsPodServer = "skydns-etcd-tmpfs"

// tmpfsDir is where tmpfsPodServer's etcd keeps its data, and
// tmpfsNeeds the room it wants there: its log segments and a database
// well past the 10,000 services propagation is measured at.
const (
	tmpfsDir   = "/dev/shm"
	tmpfsNeeds = 512 << 20
)

// startTmpfsPod starts the etcd, kube2sky and skydns of tmpfsPodServer;
// nil, with a line saying why, where tmpfsDir is missing or too small (a
// container's /dev/shm is 64 MiB by default).
func (b *bench) startTmpfsPod(e env) *server {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(tmpfsDir, &fs); err != nil || fs.Bavail*uint64(fs.Bsize) < tmpfsNeeds {
		b.s.Logf(">> %s not measured: %s has less than %d MiB free (%v)", tmpfsPodServer, tmpfsDir, tmpfsNeeds>>20, err)
		return nil
	}
	dir, err := os.MkdirTemp(tmpfsDir, "skypod-bench-etcd-")
	if err != nil {
		b.s.Fatal(err)
	}
	b.s.Cleanup(func() { _ = os.RemoveAll(dir) })
	e.etcdURL = harness.StartEtcd(b.s, "--data-dir="+dir).URL
	b.s.Logf(">> %s: kube2sky into an etcd on tmpfs", tmpfsPodServer)
	b.startKube2sky(e, &sizeResult{})
	return skydnsWith()(e, tmpfsPodServer)
}

// startKube2sky runs kube2sky into the pod's etcd and times its first
// full sync: from its start to /readiness.
func (b *bench) startKube2sky(e env, res *sizeResult) *harness.Process {
	port := harness.FreePort(b.s)
	args := []string{"--domain=cluster.local", "--etcd-server=" + e.etcdURL, "--kubecfg-file=" + e.kubeconfig,
		fmt.Sprintf("--healthz-port=%d", port), "--log-level=warn"}
	start := time.Now()
	p := harness.Start(b.s, "kube2sky", b.bins.kube2sky, args)
	waitReady(e, &server{name: "kube2sky", proc: p}, fmt.Sprintf("http://127.0.0.1:%d/readiness", port))
	res.Kube2skySync = time.Since(start).Seconds()
	b.s.Logf(">> kube2sky synced in %.1fs", res.Kube2skySync)
	return p
}

// startServers starts the servers one after another, each once the last
// is ready, so that the times to ready are each's own.
func (b *bench) startServers(e env, res *sizeResult) []*server {
	var out []*server
	for _, sp := range specs() {
		if !slices.Contains(b.c.servers, sp.name) {
			continue
		}
		d := sp.start(e, sp.name)
		res.Ready[d.name] = d.ready
		b.s.Logf(">> %s ready in %.2fs", d.name, d.ready)
		out = append(out, d)
	}
	return out
}

func countLines(path string) int {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(raw), "\n")
}

// versions are each program's own account of its version.
func (b *bench) versions() map[string]string {
	out := map[string]string{"go": runtime.Version()}
	run := func(name, bin string, args ...string) {
		raw, _ := exec.Command(bin, args...).CombinedOutput()
		out[name] = firstLine(string(raw))
	}
	run("skydns", b.bins.skydns, "--version")
	run("kube2sky", b.bins.kube2sky, "--version")
	run("etcd", harness.EtcdBinary(b.s), "--version")
	// The build's own --version says v0.0.0-master: its pinned file name says more.
	out["kube-apiserver"] = filepath.Base(harness.APIServerBinary(b.s))
	run("dnsperf", "dpkg-query", "-W", "-f", "dnsperf ${Version}", "dnsperf")
	if b.c.usesCoreDNS() {
		run("coredns", b.bins.coredns, "-version")
	}
	return out
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

// cpuModel is /proc/cpuinfo's model name.
func cpuModel() string {
	raw, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// commandLine is the run's command as one would type it: the BENCH_
// variables set, go run, the flags.
func commandLine(args []string, getenv func(string) string) string {
	var parts []string
	for _, v := range []string{"BENCH_SIZES", "BENCH_ROUNDS", "BENCH_ROUND_SECONDS"} {
		if val := getenv(v); val != "" {
			parts = append(parts, v+"="+val)
		}
	}
	return strings.Join(append(append(parts, "go", "run", "./test/bench/compare"), args...), " ")
}
