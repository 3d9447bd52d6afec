//go:build integration

package test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skypod/skypod/healthz"
	"github.com/skypod/skypod/internal/proctest"
	"github.com/skypod/skypod/test/harness"
)

// execHealthz is exec-healthz running under a test, with the pid it has in
// this machine's /proc and its port.
type execHealthz struct {
	*harness.Process
	pid  int
	port int
}

// startExecHealthz runs exec-healthz with args; with pid1, as PID 1 of a
// new PID namespace, as in its container.
func startExecHealthz(t *testing.T, pid1 bool, args ...string) *execHealthz {
	t.Helper()
	port := harness.FreePort(t)
	args = append(args, fmt.Sprintf("-port=%d", port))
	bin := harness.Binary(t, "exec-healthz")
	if !pid1 {
		p := harness.Start(t, "exec-healthz", bin, args)
		return &execHealthz{Process: p, pid: p.Pid(), port: port}
	}
	// --kill-child: the namespace (its PID 1 first) dies with unshare, so
	// the harness's cleanup still ends everything.
	ns := []string{"--pid", "--fork", "--mount-proc", "--kill-child"}
	if os.Geteuid() != 0 {
		ns = append([]string{"--user", "--map-root-user"}, ns...)
	}
	p := harness.Start(t, "exec-healthz", harness.Tool(t, "unshare"), append(append(ns, bin), args...))
	return &execHealthz{Process: p, pid: pid1Of(t, p), port: port}
}

// pid1Of is the pid, on this machine, of the child unshare forked, checked
// to be exec-healthz and PID 1 of its namespace.
func pid1Of(t *testing.T, unshare *harness.Process) int {
	t.Helper()
	var pid int
	harness.Eventually(t, 10*time.Second, "exec-healthz started by unshare", func() error {
		children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", unshare.Pid(), unshare.Pid()))
		pid, _ = strconv.Atoi(strings.TrimSpace(string(children)))
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if string(comm) != "exec-healthz\n" {
			return fmt.Errorf("child %q is %q", children, comm)
		}
		return nil
	})
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil || !strings.Contains(string(status), fmt.Sprintf("\nNSpid:\t%d\t1\n", pid)) {
		t.Fatalf("exec-healthz (pid %d) is not PID 1 of its namespace: %v\n%s", pid, err, status)
	}
	return pid
}

// metrics is exec-healthz's /metrics by series; a series with no sample yet
// reads as 0.
func (hz *execHealthz) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, line := range strings.Split(metricText(t, hz.port), "\n") {
		if i := strings.LastIndexByte(line, ' '); i > 0 && !strings.HasPrefix(line, "#") {
			out[line[:i]], _ = strconv.ParseFloat(line[i+1:], 64)
		}
	}
	return out
}

func (hz *execHealthz) healthz() (int, string) {
	code, body, err := harness.HTTPGet(fmt.Sprintf("http://127.0.0.1:%d/healthz", hz.port))
	if err != nil {
		return 0, err.Error()
	}
	return code, body
}

const (
	runs     = `exechealthz_probe_runs_total{url="/healthz"}`
	failures = `exechealthz_probe_failures_total{url="/healthz"}`
	cut      = `exechealthz_probe_output_truncated_total{url="/healthz"}`
	orphans  = "exechealthz_orphans_reaped_total"
)

// The measurement of issue #10, "sleep 30 & echo ok" for five periods, left
// five zombies. Each run here orphans two processes: its background sleep,
// killed once the shell is done, and a setsid'd sleep that left the group
// and ends by itself. Both must be reaped, and the command's own status
// must still reach the prober (a reaper that stole it would fail the probe).
func TestExecHealthzReapsOrphansAsPID1(t *testing.T) { testExecHealthzReaps(t, true) }

// The same without being PID 1: exec-healthz is a child subreaper.
func TestExecHealthzReapsOrphansAsSubreaper(t *testing.T) { testExecHealthzReaps(t, false) }

func testExecHealthzReaps(t *testing.T, pid1 bool) {
	arg := proctest.SleepArg()
	hz := startExecHealthz(t, pid1, "-cmd=setsid sleep 0.2 & sleep "+arg+" & echo ok", "-period=200ms")
	harness.Eventually(t, 30*time.Second, "five runs", func() error {
		if exited, err := hz.Exited(); exited {
			t.Fatalf("exec-healthz exited: %v", err)
		}
		if m := hz.metrics(t); m[runs] < 5 {
			return fmt.Errorf("%v runs", m[runs])
		}
		return nil
	})
	// Zombies and the background sleep exist between a run and its reaping,
	// so poll: without reaping they only pile up and this never holds.
	harness.Eventually(t, 10*time.Second, "every orphan reaped, nothing left behind", func() error {
		z, s, m := proctest.Zombies(t, hz.pid), proctest.Running(t, "sleep", arg), hz.metrics(t)
		if z != 0 || s != 0 || m[orphans] < 8 {
			return fmt.Errorf("%d zombie children, %d sleep %s running, %v orphans reaped", z, s, arg, m[orphans])
		}
		return nil
	})
	if m := hz.metrics(t); m[failures] != 0 {
		t.Errorf("%v of %v runs failed", m[failures], m[runs])
	}
	if code, body := hz.healthz(); code != 200 || body != "ok" {
		t.Errorf("/healthz: %d %q", code, body)
	}
}

// The measurement of issue #10: each timeout killed only the shell and left
// its sleeps running. Here the whole group dies at the timeout, and the
// running one at shutdown.
func TestExecHealthzTimeoutKillsTheWholeGroup(t *testing.T) {
	arg := proctest.SleepArg()
	hz := startExecHealthz(t, false, fmt.Sprintf("-cmd=sleep %s & sleep %s; echo never", arg, arg), "-period=100ms", "-timeout=300ms")
	harness.Eventually(t, 30*time.Second, "three timeouts", func() error {
		if m := hz.metrics(t); m[failures] < 3 {
			return fmt.Errorf("%v failures", m[failures])
		}
		return nil
	})
	harness.Eventually(t, 10*time.Second, "at most the running command's two sleeps", func() error {
		if n := proctest.Running(t, "sleep", arg); n > 2 {
			return fmt.Errorf("%d sleep %s running", n, arg)
		}
		return nil
	})
	if code, body := hz.healthz(); code != 503 || !strings.Contains(body, "error killed after 300ms: signal: killed") {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if err := hz.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 10*time.Second, "no sleep left once exec-healthz stopped", func() error {
		if n := proctest.Running(t, "sleep", arg); n != 0 {
			return fmt.Errorf("%d sleep %s running", n, arg)
		}
		return nil
	})
}

// A command that prints about 600 KB: the 503 body carries only the last
// healthz.MaxOutput bytes, after a line saying so, and the cut is counted.
func TestExecHealthzBoundsOutput(t *testing.T) {
	hz := startExecHealthz(t, false, "-cmd=seq 100000; echo the-end; exit 1", "-period=200ms")
	var body string
	harness.Eventually(t, 30*time.Second, "a failed run, its output cut", func() error {
		var code int
		if code, body = hz.healthz(); code != 503 || hz.metrics(t)[cut] < 1 {
			return fmt.Errorf("%d, %v cut: %.200q", code, hz.metrics(t)[cut], body)
		}
		return nil
	})
	prefix := "Healthz probe error: Result of last exec: [exec-healthz: output cut to its last "
	if !strings.HasPrefix(body, prefix) || !strings.Contains(body, "99999\n100000\nthe-end\n, at ") || len(body) > healthz.MaxOutput+300 {
		t.Fatalf("%d bytes: %.300q ... %q", len(body), body, body[max(0, len(body)-200):])
	}
}
