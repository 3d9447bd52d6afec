package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/skypod/skypod/test/bench/session"
	"github.com/skypod/skypod/test/harness"
)

// serverCore is where every server under measure runs; dnsperf and the
// fake upstream run on loadCore.
const serverCore, loadCore = "0", "1"

// env is what the servers of one size are started against.
type env struct {
	s          *session.Session
	bins       binaries
	etcdURL    string // The pod's etcd, which kube2sky fills under /skydns.
	kubeconfig string // The apiserver's, for CoreDNS's kubernetes plugin.
	upstream   string // The fake upstream, ip:port.
	cacheCap   int    // Of every cache: skydns's -rcache, CoreDNS's cache.
}

// binaries are the programs the benchmark runs.
type binaries struct{ skydns, kube2sky, fixed, coredns string }

// server is one DNS server under measure.
type server struct {
	name  string
	proc  *harness.Process
	addr  string  // 127.0.0.1:port, UDP.
	ready float64 // Seconds from its start to ready.
}

// serverSpec is a server the benchmark can start; mixes limits the mixes
// it is measured on (nil: all), for the variants that only change
// something those mixes see.
type serverSpec struct {
	name  string
	mixes []string
	about string
	start func(e env, name string) *server
}

// runs says whether the server is measured on mix.
func (sp serverSpec) runs(mix string) bool { return sp.mixes == nil || slices.Contains(sp.mixes, mix) }

// specs are every server the benchmark knows, in report order; the fixed
// responder is the ceiling every other is a share of.
func specs() []serverSpec {
	return []serverSpec{
		{name: "fixed", about: "test/bench/fixedresponder: one fixed A record for any question (the ceiling)", start: startFixed},
		{name: "skydns", about: "bin/skydns fed by bin/kube2sky, round robin on (its default), -rcache=<cache>", start: skydnsWith()},
		{name: "skydns-rr-off", mixes: []string{mixHeadless}, about: "skydns with -round-robin=false", start: skydnsWith("-round-robin=false")},
		{name: "skydns-rcache-off", mixes: []string{mixForward, mixRealistic}, about: "skydns with -rcache=0 (no cache of forwarded replies)", start: skydnsWith("-rcache=0")},
		{name: "skydns-memlimit", mixes: []string{mixA}, about: "skydns with GOMEMLIMIT=" + shippedMemLimit + ", as the Deployment runs it: its peak RSS is the memory target's", start: skydnsIn([]string{"GOMEMLIMIT=" + shippedMemLimit})},
		{name: "coredns-k8s", about: "CoreDNS kubernetes plugin on the same apiserver, forward, no cache", start: corednsWith(kubernetesPlugin, false)},
		{name: "coredns-k8s-cache", about: "as coredns-k8s, with cache (success and denial capacity <cache>)", start: corednsWith(kubernetesPlugin, true)},
		{name: "coredns-etcd", about: "CoreDNS etcd plugin over the same /skydns records, forward, no cache", start: corednsWith(etcdPlugin, false)},
		{name: "coredns-etcd-cache", about: "as coredns-etcd, with cache (success and denial capacity <cache>)", start: corednsWith(etcdPlugin, true)},
	}
}

// specsByName are specs by their names.
func specsByName() map[string]serverSpec {
	out := map[string]serverSpec{}
	for _, sp := range specs() {
		out[sp.name] = sp
	}
	return out
}

// pinned starts bin on the servers' core.
func pinned(e env, name, bin string, args ...string) *harness.Process {
	return pinnedIn(e, nil, name, bin, args...)
}

// pinnedIn is pinned with environ added to the process's environment.
func pinnedIn(e env, environ []string, name, bin string, args ...string) *harness.Process {
	return harness.Start(e.s, name, "taskset", append([]string{"-c", serverCore, bin}, args...), environ...)
}

func localAddr(e env) string { return fmt.Sprintf("127.0.0.1:%d", harness.FreePort(e.s)) }

func startFixed(e env, name string) *server {
	d := &server{name: name, addr: localAddr(e)}
	start := time.Now()
	d.proc = pinned(e, name, e.bins.fixed, d.addr)
	waitAnswers(e, d)
	d.ready = time.Since(start).Seconds()
	return d
}

// skydnsWith starts skydns on the pod's etcd with the flags the
// benchmark's skydns share, then extra.
func skydnsWith(extra ...string) func(e env, name string) *server { return skydnsIn(nil, extra...) }

// shippedMemLimit is the GOMEMLIMIT manifests/modern and manifests/ha
// give skydns.
const shippedMemLimit = "128MiB"

// skydnsIn is skydnsWith with environ added to skydns's environment.
func skydnsIn(environ []string, extra ...string) func(e env, name string) *server {
	return func(e env, name string) *server {
		d := &server{name: name, addr: localAddr(e)}
		metrics := localAddr(e)
		args := append([]string{"-machines=" + e.etcdURL, "-addr=" + d.addr, "-domain=cluster.local.",
			"-nameservers=" + e.upstream, "-ns-rotate=false", "-metrics-addr=" + metrics, "-log-level=warn",
			fmt.Sprintf("-rcache=%d", e.cacheCap)}, extra...)
		start := time.Now()
		d.proc = pinnedIn(e, environ, name, e.bins.skydns, args...)
		waitReady(e, d, "http://"+metrics+"/ready")
		d.ready = time.Since(start).Seconds()
		return d
	}
}

// A CoreDNS backend: the plugin's lines in the server block.
type backend func(e env) string

func kubernetesPlugin(e env) string {
	return fmt.Sprintf("kubernetes cluster.local in-addr.arpa ip6.arpa {\n\t\tkubeconfig %s test\n\t}", e.kubeconfig)
}

func etcdPlugin(e env) string {
	return fmt.Sprintf("etcd cluster.local in-addr.arpa ip6.arpa {\n\t\tpath /skydns\n\t\tendpoint %s\n\t}", e.etcdURL)
}

// corefile is the configuration of a CoreDNS on addr: the backend for the
// cluster's zones, everything else forwarded to the fake upstream, with a
// cache of explicit capacity or none, readiness on ready.
func corefile(e env, addr, ready string, plugin backend, cache bool) string {
	host, port, _ := strings.Cut(addr, ":")
	lines := []string{"." + ":" + port + " {", "\tbind " + host, "\tready " + ready, "\t" + plugin(e), "\tforward . " + e.upstream}
	if cache {
		lines = append(lines, fmt.Sprintf("\tcache 30 {\n\t\tsuccess %d\n\t\tdenial %d\n\t}", e.cacheCap, e.cacheCap))
	}
	return strings.Join(append(lines, "}"), "\n") + "\n"
}

func corednsWith(plugin backend, cache bool) func(e env, name string) *server {
	return func(e env, name string) *server {
		d := &server{name: name, addr: localAddr(e)}
		ready := localAddr(e)
		conf := filepath.Join(e.s.TempDir(), "Corefile")
		if err := os.WriteFile(conf, []byte(corefile(e, d.addr, ready, plugin, cache)), 0o644); err != nil {
			e.s.Fatal(err)
		}
		start := time.Now()
		d.proc = pinned(e, name, e.bins.coredns, "-conf", conf)
		waitReady(e, d, "http://"+ready+"/ready")
		d.ready = time.Since(start).Seconds()
		return d
	}
}

// waitReady polls url until it says 200, failing if the server exits.
func waitReady(e env, d *server, url string) {
	harness.Eventually(e.s, 10*time.Minute, d.name+" ready", func() error {
		if done, err := d.proc.Exited(); done {
			e.s.Fatalf("%s exited: %v\n%s", d.name, err, d.proc.Log())
		}
		code, body, err := harness.HTTPGet(url)
		if err == nil && code != 200 {
			err = fmt.Errorf("%s: %d %s", url, code, body)
		}
		return err
	})
}

// waitAnswers polls the server with a query until it replies.
func waitAnswers(e env, d *server) {
	harness.Eventually(e.s, 30*time.Second, d.name+" answering", func() error {
		_, err := harness.Exchange(d.addr, "udp", "ready.check.", dns.TypeA)
		return err
	})
}

// startUpstream is the fake upstream the servers forward to: a fixed
// responder on the load's core, answering any name.
func startUpstream(e env) string {
	addr := localAddr(e)
	d := &server{name: "upstream", addr: addr}
	d.proc = harness.Start(e.s, "upstream", "taskset", []string{"-c", loadCore, e.bins.fixed, addr})
	waitAnswers(e, d)
	return addr
}
