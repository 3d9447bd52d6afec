package etcdclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// How the monitor checks each member. A stalled member (SIGSTOP, a hung
// disk) keeps its sockets open, so gRPC goes on sending to it until its
// keepalive fires, which gRPC puts at no less than 10 s; checking each
// member every second with a short timeout finds it within checkEvery +
// checkTimeout.
const (
	checkEvery   = time.Second
	checkTimeout = 2 * time.Second
)

// conns tracks the main client's connections by address, so that the
// monitor can close those to a member that stopped answering. Closing the
// socket fails every stream on it at once (the watch included, which the
// etcd client then resumes on another member from its last revision);
// taking the member out of the balancer would only drain it, leaving
// open streams hanging on it.
type conns struct {
	mu     sync.Mutex
	byAddr map[string]map[*trackedConn]struct{}
}

type trackedConn struct {
	net.Conn
	addr  string
	owner *conns
}

func (c *trackedConn) Close() error {
	c.owner.mu.Lock()
	delete(c.owner.byAddr[c.addr], c)
	c.owner.mu.Unlock()
	return c.Conn.Close()
}

// dial is the gRPC dialer of the main client.
func (cs *conns) dial(ctx context.Context, addr string) (net.Conn, error) {
	network, address := "tcp", addr
	if rest, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, address = "unix", strings.TrimPrefix(rest, "//")
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, addr: addr, owner: cs}
	cs.mu.Lock()
	if cs.byAddr[addr] == nil {
		cs.byAddr[addr] = make(map[*trackedConn]struct{})
	}
	cs.byAddr[addr][tc] = struct{}{}
	cs.mu.Unlock()
	return tc, nil
}

// closeAddr closes every connection to addr and says how many there were.
func (cs *conns) closeAddr(addr string) int {
	cs.mu.Lock()
	var open []*trackedConn
	for c := range cs.byAddr[addr] {
		open = append(open, c)
	}
	cs.mu.Unlock()
	for _, c := range open {
		_ = c.Close() // Its error is the socket's; gRPC sees the close.
	}
	return len(open)
}

// monitor checks each member on a connection of its own. A member that
// does not answer has the main client's connections to it closed (when
// there are others to move to), and the reason is logged once: a TLS
// handshake probe names what the etcd client reports only as a deadline.
type monitor struct {
	opts  Options
	tls   *tls.Config
	conns *conns
	log   *slog.Logger
}

func (m *monitor) run(ctx context.Context) {
	for _, ep := range m.opts.Endpoints {
		go m.watchMember(ctx, ep)
	}
}

// watchMember checks one member until ctx (the main client's) ends.
func (m *monitor) watchMember(ctx context.Context, ep string) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints: []string{ep}, TLS: m.tls, DialTimeout: checkTimeout, Logger: zap.NewNop(),
	})
	if err != nil {
		m.log.Error("etcd member check not started", "endpoint", ep, "err", err)
		return
	}
	defer c.Close()
	tick := time.NewTicker(checkEvery)
	defer tick.Stop()
	lastReason := ""
	for {
		lastReason = m.check(ctx, c, ep, lastReason)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// check asks one member for its status; on failure it moves the main
// client off it and logs why, unless that reason was the last logged.
func (m *monitor) check(ctx context.Context, c *clientv3.Client, ep, lastReason string) string {
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	_, err := c.Status(cctx, ep)
	if ctx.Err() != nil {
		return lastReason
	}
	if err == nil {
		if lastReason != "" {
			m.log.Info("etcd member answering again", "endpoint", ep)
		}
		return ""
	}
	closed := 0
	if len(m.opts.Endpoints) > 1 {
		closed = m.conns.closeAddr(hostPort(ep))
	}
	reason := probe(ctx, ep, m.tls)
	if reason == nil {
		reason = fmt.Errorf("no status within %s: %w", checkTimeout, err)
	}
	if reason.Error() != lastReason {
		m.log.Error("etcd member unusable", "endpoint", ep, "reason", reason.Error(), "connections_closed", closed)
	}
	return reason.Error()
}

// hostPort is the address gRPC dials for an endpoint URL.
func hostPort(ep string) string {
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" {
		return ep
	}
	return u.Host
}

// http2Preface opens an HTTP/2 connection, followed by an empty SETTINGS
// frame; a server answers with its own SETTINGS frame.
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"

// probe connects to ep as gRPC would (TLS when tlsCfg is set) and waits
// for the server's first HTTP/2 frame. Its error names what failed: the
// connect, the handshake (an unknown server CA), the server's TLS alert
// (a client certificate missing or refused), or a plaintext connection
// closed by a TLS-only server. nil means the server answered.
func probe(ctx context.Context, ep string, tlsCfg *tls.Config) error {
	pctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	addr := hostPort(ep)
	var d net.Dialer
	conn, err := d.DialContext(pctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	deadline, _ := pctx.Deadline()
	_ = conn.SetDeadline(deadline) // A stalled server must not hold the probe.
	if tlsCfg != nil {
		cfg := tlsCfg.Clone()
		cfg.NextProtos = []string{"h2"}
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(pctx); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	return readSettings(conn, tlsCfg != nil)
}

// readSettings sends the HTTP/2 preface and reads the first frame header.
// Under TLS 1.3 a server refusing the client certificate says so only
// now, in an alert that fails the read.
func readSettings(conn net.Conn, isTLS bool) error {
	if _, err := io.WriteString(conn, http2Preface); err != nil {
		return fmt.Errorf("server refused the connection: %w", err)
	}
	var header [9]byte
	_, err := io.ReadFull(conn, header[:])
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return errors.New("no answer to an HTTP/2 preface: the member is stalled or overloaded")
	case err != nil && !isTLS:
		return fmt.Errorf("server closed a plaintext connection (%w): is it TLS-only? use https:// and the TLS flags", err)
	case err != nil:
		return fmt.Errorf("server refused the connection: %w", err)
	case header[3] != 0x4: // SETTINGS
		return fmt.Errorf("not an HTTP/2 server (first frame of type %d)", header[3])
	}
	return nil
}
