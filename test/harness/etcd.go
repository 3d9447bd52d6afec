package harness

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Etcd is a real etcd server process on loopback. Stop and Start keep its
// data directory and ports, like a restarted container with its volume.
type Etcd struct {
	URL     string
	t       testing.TB
	bin     string
	dataDir string
	peerURL string
	extra   []string
	proc    *Process
}

// StartEtcd starts a fresh single-member etcd and waits until it answers.
// extra flags follow the project's own, so one of them given again there
// (`--quota-backend-bytes=4194304`) overrides it: etcd takes the last,
// on every (re)start.
func StartEtcd(t testing.TB, extra ...string) *Etcd {
	t.Helper()
	e := &Etcd{
		t: t, bin: EtcdBinary(t), dataDir: t.TempDir(), extra: extra,
		URL:     fmt.Sprintf("http://127.0.0.1:%d", FreePort(t)),
		peerURL: fmt.Sprintf("http://127.0.0.1:%d", FreePort(t)),
	}
	e.Start()
	return e
}

// Start (re)starts the server and waits for it to serve.
func (e *Etcd) Start() {
	e.t.Helper()
	e.proc = Start(e.t, "etcd", e.bin, append([]string{
		"--data-dir", e.dataDir, "--name", "test",
		"--listen-client-urls", e.URL, "--advertise-client-urls", e.URL,
		"--listen-peer-urls", e.peerURL, "--initial-advertise-peer-urls", e.peerURL,
		"--initial-cluster", "test=" + e.peerURL, "--log-level", "warn",
		// As every etcd the project starts (docs/architecture.md, "etcd").
		"--auto-compaction-mode", "periodic", "--auto-compaction-retention", "5m",
		"--quota-backend-bytes", "268435456",
	}, e.extra...))
	c := e.Client()
	Eventually(e.t, 20*time.Second, "etcd serving", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.Status(ctx, e.URL)
		return err
	})
}

// Stop kills the server (as a crash would).
func (e *Etcd) Stop() { e.proc.Kill() }

// Pause freezes the server with SIGSTOP: it holds its connections and
// answers nothing, as a hung or partitioned etcd does. Resume thaws it.
func (e *Etcd) Pause() { e.proc.Signal(e.t, syscall.SIGSTOP) }

// Resume is SIGCONT, the end of a Pause.
func (e *Etcd) Resume() { e.proc.Signal(e.t, syscall.SIGCONT) }

// Client is a new client, closed when the test ends.
func (e *Etcd) Client() *clientv3.Client {
	e.t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.URL}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// Put writes one key, failing the test on error.
func (e *Etcd) Put(c *clientv3.Client, key, value string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, key, value); err != nil {
		e.t.Fatalf("put %s: %v", key, err)
	}
}

// Delete removes one key, failing the test on error.
func (e *Etcd) Delete(c *clientv3.Client, key string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Delete(ctx, key); err != nil {
		e.t.Fatalf("delete %s: %v", key, err)
	}
}

// DataDir is where the server keeps its data.
func (e *Etcd) DataDir() string { return e.dataDir }
