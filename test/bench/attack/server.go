package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skypod/skypod/test/harness"
)

// skydns is one skydns process under measure.
type skydns struct {
	proc    *harness.Process
	addr    string // DNS, UDP and TCP.
	metrics string // Base URL of /metrics and /ready.
}

// startSkydns runs bin against etcdURL, forwarding to upstream, and waits
// until it has loaded the records. Only flags every build since the
// metrics endpoint has are given, so an old build runs as well.
func startSkydns(s *session, bin, etcdURL, upstream string) *skydns {
	d := &skydns{
		addr:    fmt.Sprintf("127.0.0.1:%d", harness.FreePort(s)),
		metrics: fmt.Sprintf("http://127.0.0.1:%d", harness.FreePort(s)),
	}
	d.proc = harness.Start(s, "skydns", bin, []string{
		"-machines=" + etcdURL, "-addr=" + d.addr, "-domain=cluster.local.",
		"-nameservers=" + upstream, "-ns-rotate=false",
		"-metrics-addr=" + strings.TrimPrefix(d.metrics, "http://"), "-log-level=error",
	})
	harness.Eventually(s, 3*time.Minute, "skydns ready", func() error {
		if done, err := d.proc.Exited(); done {
			s.Fatalf("skydns exited: %v\n%s", err, d.proc.Log())
		}
		code, body, err := harness.HTTPGet(d.metrics + "/ready")
		if err == nil && code != 200 {
			err = fmt.Errorf("/ready: %d %s", code, body)
		}
		return err
	})
	return d
}

// metric is the value of an unlabelled metric, or -1 when it cannot be read.
func (d *skydns) metric(name string) float64 {
	code, body, err := harness.HTTPGet(d.metrics + "/metrics")
	if err != nil || code != 200 {
		return -1
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// openFiles is how many descriptors the process holds.
func (d *skydns) openFiles() int { return d.countFDs(func(string) bool { return true }) }

// peaks are the highest values sampled while an attack ran.
type peaks struct {
	rssMiB     float64
	goroutines float64
	files      int
}

// sample records skydns's RSS, goroutines and descriptors every interval
// until the returned stop is called, which returns the peaks. The
// goroutine count comes from its /metrics, which an overloaded skydns may
// answer late: it is sampled apart from the rest.
func (d *skydns) sample(s *session, interval time.Duration) (stop func() peaks) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	p := peaks{}
	wg.Go(func() {
		every(ctx, interval, func() {
			rss, files := d.proc.StatusMiB(s, "VmRSS"), d.openFiles()
			mu.Lock()
			p.rssMiB, p.files = max(p.rssMiB, rss), max(p.files, files)
			mu.Unlock()
		})
	})
	wg.Go(func() {
		every(ctx, interval, func() {
			g := d.metric("go_goroutines")
			mu.Lock()
			p.goroutines = max(p.goroutines, g)
			mu.Unlock()
		})
	})
	return func() peaks {
		cancel()
		wg.Wait()
		return p
	}
}

// every runs f now and every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		f()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tcpConns is how many established TCP connections skydns holds on its
// DNS port, from /proc: the connections it has not closed, whatever their
// clients did.
func (d *skydns) tcpConns() int {
	_, port, _ := strings.Cut(d.addr, ":")
	want, _ := strconv.Atoi(port)
	inodes := map[string]bool{}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", d.proc.Pid()))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 10 || f[3] != "01" { // 01: ESTABLISHED.
			continue
		}
		_, local, _ := strings.Cut(f[1], ":")
		if p, err := strconv.ParseInt(local, 16, 32); err == nil && int(p) == want {
			inodes["socket:["+f[9]+"]"] = true
		}
	}
	return d.countFDs(func(target string) bool { return inodes[target] })
}

// countFDs counts the process's descriptors whose link target matches.
func (d *skydns) countFDs(match func(target string) bool) int {
	dir := fmt.Sprintf("/proc/%d/fd", d.proc.Pid())
	entries, err := os.ReadDir(dir)
	if err != nil {
		return -1
	}
	n := 0
	for _, e := range entries {
		if target, err := os.Readlink(dir + "/" + e.Name()); err == nil && match(target) {
			n++
		}
	}
	return n
}
