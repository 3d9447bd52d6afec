package harness

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/skypod/skypod/internal/testcerts"
)

// Etcd is a real etcd server process on loopback. Stop and Start keep its
// data directory and ports, like a restarted container with its volume.
type Etcd struct {
	URL     string
	Name    string
	t       testing.TB
	bin     string
	dataDir string
	peerURL string
	cluster string // --initial-cluster
	tls     *EtcdTLS
	extra   []string
	proc    *Process
}

// EtcdTLS makes an etcd serve clients over TLS only and require a client
// certificate signed by CA (--client-cert-auth); peers stay plaintext on
// loopback. The harness's own clients present Client.
type EtcdTLS struct {
	Server testcerts.Cert
	Client testcerts.Cert
	CA     string // PEM file of the CA that signed both.
}

// StartEtcd starts a fresh single-member etcd and waits until it answers.
// extra flags follow the project's own, so one of them given again there
// (`--quota-backend-bytes=4194304`) overrides it: etcd takes the last,
// on every (re)start.
func StartEtcd(t testing.TB, extra ...string) *Etcd {
	t.Helper()
	return startEtcdMembers(t, 1, nil, extra)[0]
}

// StartEtcdCluster starts n fresh members of one cluster on loopback,
// serving clients over TLS when tlsFiles is set, and waits until each
// answers. Members start together: none serves before a quorum has.
func StartEtcdCluster(t testing.TB, n int, tlsFiles *EtcdTLS) []*Etcd {
	t.Helper()
	return startEtcdMembers(t, n, tlsFiles, nil)
}

func startEtcdMembers(t testing.TB, n int, tlsFiles *EtcdTLS, extra []string) []*Etcd {
	t.Helper()
	scheme := "http"
	if tlsFiles != nil {
		scheme = "https"
	}
	members := make([]*Etcd, n)
	ports := FreePorts(t, 2*n) // Client and peer, all distinct.
	var peers []string
	for i := range members {
		name := "test"
		if n > 1 {
			name = fmt.Sprintf("m%d", i)
		}
		members[i] = &Etcd{
			t: t, bin: EtcdBinary(t), dataDir: t.TempDir(), Name: name, tls: tlsFiles, extra: extra,
			URL:     fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i]),
			peerURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
		}
		peers = append(peers, name+"="+members[i].peerURL)
	}
	for _, e := range members {
		e.cluster = strings.Join(peers, ",")
		e.launch()
	}
	for _, e := range members {
		e.WaitServing()
	}
	return members
}

// Start (re)starts the server and waits for it to serve.
func (e *Etcd) Start() {
	e.t.Helper()
	e.launch()
	e.WaitServing()
}

func (e *Etcd) launch() {
	e.t.Helper()
	args := []string{
		"--data-dir", e.dataDir, "--name", e.Name,
		"--listen-client-urls", e.URL, "--advertise-client-urls", e.URL,
		"--listen-peer-urls", e.peerURL, "--initial-advertise-peer-urls", e.peerURL,
		"--initial-cluster", e.cluster, "--log-level", "warn",
		// As every etcd the project starts (docs/architecture.md, "etcd").
		"--auto-compaction-mode", "periodic", "--auto-compaction-retention", "5m",
		"--quota-backend-bytes", "268435456",
	}
	if e.tls != nil {
		args = append(args, "--cert-file", e.tls.Server.CertFile, "--key-file", e.tls.Server.KeyFile,
			"--client-cert-auth", "--trusted-ca-file", e.tls.CA)
	}
	e.proc = Start(e.t, "etcd-"+e.Name, e.bin, append(args, e.extra...))
}

// WaitServing waits until the server answers a status request.
func (e *Etcd) WaitServing() {
	e.t.Helper()
	c := e.Client()
	Eventually(e.t, 30*time.Second, "etcd serving", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.Status(ctx, e.URL)
		return err
	})
}

// Stop kills the server (as a crash would).
func (e *Etcd) Stop() { e.proc.Kill() }

// Pause freezes the server with SIGSTOP: it holds its connections and
// answers nothing, as a hung or partitioned etcd (or a stalled disk) does.
// Resume thaws it.
func (e *Etcd) Pause() { e.proc.Signal(e.t, syscall.SIGSTOP) }

// Resume is SIGCONT, the end of a Pause.
func (e *Etcd) Resume() { e.proc.Signal(e.t, syscall.SIGCONT) }

// Client is a new client, closed when the test ends.
func (e *Etcd) Client() *clientv3.Client {
	e.t.Helper()
	return newClient(e.t, e.tls, e.URL)
}

func newClient(t testing.TB, tlsFiles *EtcdTLS, urls ...string) *clientv3.Client {
	t.Helper()
	cfg := clientv3.Config{Endpoints: urls, DialTimeout: 2 * time.Second, Logger: zap.NewNop()}
	if tlsFiles != nil {
		cfg.TLS = tlsFiles.ClientConfig(t)
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ClusterClient is a new client of every member (the etcd client balances
// across them), closed when the test ends.
func ClusterClient(t testing.TB, members []*Etcd) *clientv3.Client {
	t.Helper()
	return newClient(t, members[0].tls, urls(members)...)
}

func urls(members []*Etcd) []string {
	var out []string
	for _, m := range members {
		out = append(out, m.URL)
	}
	return out
}

// Servers are the members' client URLs as the binaries' flags take them
// (skydns's -machines, kube2sky's --etcd-server): comma-separated.
func Servers(members []*Etcd) string { return strings.Join(urls(members), ",") }

// Leader is the member that leads, by the maintenance Status API: the one
// whose status names itself the leader. It waits out an election.
func Leader(t testing.TB, members []*Etcd) *Etcd {
	t.Helper()
	clients := make([]*clientv3.Client, len(members))
	for i, m := range members {
		clients[i] = m.Client()
	}
	var found *Etcd
	Eventually(t, 30*time.Second, "an etcd member that leads", func() error {
		for i, m := range members {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			resp, err := clients[i].Status(ctx, m.URL)
			cancel()
			if err == nil && resp.Leader == resp.Header.MemberId {
				found = m
				return nil
			}
		}
		return errors.New("no member says it leads")
	})
	return found
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
