//go:build integration

package test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/skypod/skypod/test/harness"
)

// TestUpScripts runs `make up` and `make up-ha` as the README tells a new
// user to (their scripts, with the binaries the tests use and ports of
// their own), resolves a demo service through every skydns they start,
// then stops them as a terminal's Ctrl-C does, signalling the whole
// process group, and checks that nothing is left: no run directory, no
// DNS port still bound.
func TestUpScripts(t *testing.T) {
	for _, c := range []struct {
		script string
		dns    []string // The skydns addresses, without the port.
		// How it is stopped: Ctrl-C in its terminal (SIGINT to the whole
		// process group), or `kill` of the script alone (SIGTERM, which
		// only the script's trap passes on).
		group  bool
		signal syscall.Signal
		status int // A shell's status for a job a signal ended: 128 + it.
	}{
		{"up.sh", []string{"127.0.0.1"}, false, syscall.SIGTERM, 143},
		{"up-ha.sh", []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}, true, syscall.SIGINT, 130},
	} {
		t.Run(c.script, func(t *testing.T) {
			up := startUpScript(t, c.script)
			for _, ip := range c.dns {
				addr := net.JoinHostPort(ip, up.dnsPort)
				m, err := harness.Exchange(addr, "udp", "web.demo.svc.cluster.local.", dns.TypeA)
				if err := harness.WantRcode(m, err, dns.RcodeSuccess); err != nil || len(m.Answer) == 0 {
					t.Fatalf("%s: web.demo through %s: %v %v\n%s", c.script, addr, err, harness.Answers(m), up.output())
				}
			}
			if code := up.stop(t, c.group, c.signal); code != c.status {
				t.Errorf("%s exited %d after %v, want %d:\n%s", c.script, code, c.signal, c.status, up.output())
			}
			if _, err := os.Stat(up.runDir); !os.IsNotExist(err) {
				t.Errorf("%s left its run directory %s (%v)", c.script, up.runDir, err)
			}
			for _, ip := range c.dns {
				pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, up.dnsPort))
				if err != nil {
					t.Errorf("%s left %s:%s bound: %v", c.script, ip, up.dnsPort, err)
					continue
				}
				pc.Close()
			}
		})
	}
}

// upScript is one run of scripts/up.sh or up-ha.sh, in a process group of
// its own as a shell's foreground job is.
type upScript struct {
	cmd     *exec.Cmd
	log     string
	runDir  string
	dnsPort string
	done    chan error
}

// startUpScript starts script on a block of ports below the kernel's
// ephemeral range (so no test's FreePort is among them), trying another
// block if the script finds one in use, and waits for it to say it is up.
func startUpScript(t *testing.T, script string) *upScript {
	t.Helper()
	for attempt := 0; attempt < 3; attempt++ {
		base := 15000 + 20*rand.IntN(800)
		up := launchUpScript(t, script, base)
		harness.Eventually(t, 4*time.Minute, script+" up", func() error {
			if exited(up.done) || strings.Contains(up.output(), "Ctrl-C stops everything.") {
				return nil
			}
			return fmt.Errorf("not up yet; its output so far:\n%s", up.output())
		})
		if !exited(up.done) {
			return up
		}
		if !strings.Contains(up.output(), "is in use") {
			t.Fatalf("%s exited before it was up:\n%s", script, up.output())
		}
	}
	t.Fatalf("%s: no free block of ports in three tries", script)
	return nil
}

func launchUpScript(t *testing.T, script string, base int) *upScript {
	dir := t.TempDir()
	up := &upScript{log: filepath.Join(dir, "up.log"), runDir: filepath.Join(dir, "run"), dnsPort: fmt.Sprint(base + 12), done: make(chan error, 1)}
	out, err := os.Create(up.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	etcd := harness.EtcdBinary(t)
	path, err := filepath.Abs(filepath.Join("..", "scripts", script)) // go test runs in test/.
	if err != nil {
		t.Fatal(err)
	}
	up.cmd = exec.Command(path)
	up.cmd.Stdout, up.cmd.Stderr = out, out
	up.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	up.cmd.Env = append(os.Environ(),
		"RUN_DIR="+up.runDir,
		"SKYPOD_BIN_DIR="+filepath.Dir(harness.Binary(t, "skydns")),
		"SKYPOD_ETCD_BIN="+etcd,
		"SKYPOD_ETCDCTL_BIN="+strings.Replace(etcd, "etcd-", "etcdctl-", 1),
		"SKYPOD_APISERVER_BIN="+harness.APIServerBinary(t),
		fmt.Sprintf("API_ETCD_PORT=%d", base), fmt.Sprintf("API_PORT=%d", base+2),
		fmt.Sprintf("ETCD_PORT=%d", base+4), // Up to six for up-ha's three members.
		"DNS_PORT="+up.dnsPort, fmt.Sprintf("METRICS_PORT=%d", base+13),
		fmt.Sprintf("KUBE2SKY_PORT=%d", base+14), // And the next, for up-ha's second.
		fmt.Sprintf("HEALTHZ_PORT=%d", base+16))
	if err := up.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", script, err)
	}
	go func() { up.done <- up.cmd.Wait() }()
	t.Cleanup(func() {
		if !exited(up.done) {
			_ = syscall.Kill(-up.cmd.Process.Pid, syscall.SIGKILL)
			t.Logf("%s killed at the end: %v", script, <-up.done)
		}
	})
	return up
}

// stop sends sig to the script, or to its whole process group as Ctrl-C
// in a terminal does, waits for the script to end and returns its exit
// status.
func (u *upScript) stop(t *testing.T, group bool, sig syscall.Signal) int {
	t.Helper()
	pid := u.cmd.Process.Pid
	if group {
		pid = -pid
	}
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("%v: %v", sig, err)
	}
	select {
	case err := <-u.done:
		u.done <- err
	case <-time.After(time.Minute):
		t.Fatalf("still running a minute after %v:\n%s", sig, u.output())
	}
	return u.cmd.ProcessState.ExitCode()
}

func (u *upScript) output() string {
	b, _ := os.ReadFile(u.log)
	return string(b)
}

// exited reports whether the process behind done has ended, leaving the
// answer for the next reader.
func exited(done chan error) bool {
	select {
	case err := <-done:
		done <- err
		return true
	default:
		return false
	}
}
