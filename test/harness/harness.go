// Package harness starts the real things the integration tests talk to: an
// etcd server process, the project's own binaries as processes, and dig.
// A missing dependency fails the test loudly; nothing here skips.
package harness

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// repoRoot is the module root, found from this file's location.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Binary returns the path of one of the project's binaries: from
// SKYPOD_BIN_DIR, else bin/ of the repository (what `make build` writes).
func Binary(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("SKYPOD_BIN_DIR")
	if dir == "" {
		dir = filepath.Join(repoRoot(), "bin")
	}
	return mustExecutable(t, filepath.Join(dir, name), "run `make build` (or `make test`, which builds it)")
}

// EtcdBinary is the pinned etcd build: SKYPOD_ETCD_BIN, else .cache/etcd-v3.6.6.
func EtcdBinary(t testing.TB) string {
	t.Helper()
	return cachedBuild(t, "SKYPOD_ETCD_BIN", "etcd-v3.6.6", "etcd")
}

// KustomizeBinary is the pinned kustomize build: SKYPOD_KUSTOMIZE_BIN, else
// .cache/kustomize-v5.8.1.
func KustomizeBinary(t testing.TB) string {
	t.Helper()
	return cachedBuild(t, "SKYPOD_KUSTOMIZE_BIN", "kustomize-v5.8.1", "kustomize")
}

// cachedBuild is a pinned third-party build: the path in env, else the
// file in .cache/ that `make <target>` writes.
func cachedBuild(t testing.TB, env, file, target string) string {
	t.Helper()
	path := os.Getenv(env)
	if path == "" {
		path = filepath.Join(repoRoot(), ".cache", file)
	}
	return mustExecutable(t, path, "run `make "+target+"` (or `make test`, which builds it)")
}

// Tool returns the path of a command from the Debian packages the tests use.
func Tool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed: run `make deps` (Debian dnsutils, dnsperf, busybox-static)", name)
	}
	return path
}

func mustExecutable(t testing.TB, path, hint string) string {
	t.Helper()
	if st, err := os.Stat(path); err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("%s is missing or not executable: %s", path, hint)
	}
	return path
}

// FreePort returns a loopback port that is free for both TCP and UDP at
// the moment of asking.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePorts(t, 1)[0]
}

// FreePorts returns n distinct loopback ports, each free for both TCP and
// UDP at the moment of asking. All n are held until the last is found:
// ports asked for one at a time, each released before the next, can come
// back twice (an etcd member once got the same port for its client and
// peer URLs, and could not start).
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for i := 0; len(ports) < n && i < 50*n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		if pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			pc.Close()
			ports = append(ports, port)
		}
	}
	if len(ports) < n {
		t.Fatalf("found %d free ports of %d", len(ports), n)
	}
	return ports
}

// Process is one of our binaries, or etcd, running under a test.
type Process struct {
	Name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error
}

// Start runs path with args and extra environment, logging to a file that
// is printed when the test fails. The process is killed when the test ends.
func Start(t testing.TB, name, path string, args []string, env ...string) *Process {
	t.Helper()
	return StartWithFiles(t, name, path, args, nil, env...)
}

// StartWithFiles is Start with extra open files passed as fds 3, 4, ...
func StartWithFiles(t testing.TB, name, path string, args []string, files []*os.File, env ...string) *Process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.ExtraFiles = files
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Process{Name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("---- %s log (%s) ----\n%s", name, strings.Join(args, " "), p.Log())
		}
	})
	return p
}

// Pid is the process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// PeakRSSMiB is the process's peak resident set size so far (VmHWM).
func (p *Process) PeakRSSMiB(t testing.TB) float64 {
	t.Helper()
	return p.StatusMiB(t, "VmHWM")
}

// StatusMiB is a kB field of the process's /proc status (VmHWM, VmRSS), in
// MiB.
func (p *Process) StatusMiB(t testing.TB, field string) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			var kb float64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%f", &kb); err != nil {
				t.Fatalf("%s %q: %v", field, v, err)
			}
			return kb / 1024
		}
	}
	t.Fatalf("no %s in /proc status", field)
	return 0
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat times:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// CPUSeconds is the CPU time the process has used so far, user and system.
func (p *Process) CPUSeconds(t testing.TB) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	// The command name may hold spaces: the fields count from its ")".
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	var utime, stime float64
	if len(fields) < 13 {
		t.Fatalf("/proc stat: %q", b)
	}
	if _, err := fmt.Sscanf(fields[11]+" "+fields[12], "%f %f", &utime, &stime); err != nil {
		t.Fatalf("/proc stat times: %v", err)
	}
	return (utime + stime) / clockTicks
}

// Log returns what the process has written so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// Kill stops the process at once and waits for it.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Signal sends sig to the process, failing the test if it cannot.
func (p *Process) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: signal %v: %v", p.Name, sig, err)
	}
}

// Stop sends SIGTERM and waits up to timeout, returning the exit error.
func (p *Process) Stop(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s did not exit within %s of SIGTERM", p.Name, timeout)
	}
}

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.exited:
		return true, p.err
	default:
		return false, nil
	}
}

// Eventually polls cond until it returns nil or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, timeout, err)
}

// HTTPGet returns the status and body of url.
func HTTPGet(url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.String(), err
}
