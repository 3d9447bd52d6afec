// Package etcdclient builds the etcd v3 client both skydns and kube2sky
// use, from legacy-style flags: URLs and optional TLS files.
package etcdclient

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Options say where etcd is and how to reach it.
type Options struct {
	Endpoints   []string // http:// or https:// URLs
	CertFile    string
	KeyFile     string
	CAFile      string
	DialTimeout time.Duration
	AutoSync    bool // Follow membership changes (SkyDNS's -discover).
}

// SplitURLs splits a comma-separated URL flag, dropping empty entries.
func SplitURLs(s string) []string {
	var out []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// Keepalive is the etcd client's backstop for a member that stops
// answering: gRPC raises any ping interval below 10 s to 10 s, so the
// monitor (monitor.go) is what moves off a stalled member within seconds.
const (
	keepAliveTime    = 10 * time.Second
	keepAliveTimeout = 3 * time.Second
)

// New returns a client. It does not wait for etcd to be reachable: callers
// retry their own requests, so a server may start before its etcd. It
// does check the TLS files and the URLs' schemes first, so a bad flag is
// one clear error. With several members, or with TLS, a monitor checks
// each member until the client is closed: see monitor.go.
func New(o Options, log *slog.Logger) (*clientv3.Client, error) {
	if len(o.Endpoints) == 0 {
		return nil, fmt.Errorf("no etcd endpoints")
	}
	if err := checkSchemes(o); err != nil {
		return nil, err
	}
	cs := &conns{byAddr: make(map[string]map[*trackedConn]struct{})}
	cfg := clientv3.Config{
		Endpoints:         o.Endpoints,
		DialTimeout:       o.DialTimeout,
		Logger:            zap.NewNop(), // Its errors reach us as returned errors; we log those.
		DialKeepAliveTime: keepAliveTime, DialKeepAliveTimeout: keepAliveTimeout,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(cs.dial)},
	}
	if len(o.Endpoints) > 1 {
		cfg.DialOptions = append(cfg.DialOptions, grpc.WithChainUnaryInterceptor(boundWrites))
	}
	if o.AutoSync {
		cfg.AutoSyncInterval = 30 * time.Second
	}
	if o.hasTLSFiles() || strings.HasPrefix(o.Endpoints[0], "https://") {
		tlsCfg, err := tlsConfig(o, time.Now())
		if err != nil {
			return nil, err
		}
		cfg.TLS = tlsCfg
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", o.Endpoints, err)
	}
	if len(o.Endpoints) > 1 || cfg.TLS != nil {
		m := &monitor{opts: o, tls: cfg.TLS, conns: cs, log: log}
		m.run(c.Ctx()) // Ends with Close, which cancels that context.
	}
	log.Debug("etcd client created", "endpoints", o.Endpoints)
	return c, nil
}

// writeAttemptTimeout bounds each attempt of a write to a cluster. A
// write a follower forwarded to a leader that then stalled is lost, and
// the member answers only after its own request timeout (7 s with the
// default election timeout); given up on sooner, the caller's retry
// reaches the new leader, elected within about 2 s. Writes are what
// kube2sky repeats anyway, and one takes milliseconds on a healthy member.
const writeAttemptTimeout = 3 * time.Second

// boundWrites applies writeAttemptTimeout to etcd's write methods. It runs
// inside the etcd client's retry interceptor, so it bounds each attempt.
func boundWrites(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	switch method {
	case "/etcdserverpb.KV/Txn", "/etcdserverpb.KV/Put", "/etcdserverpb.KV/DeleteRange":
		actx, cancel := context.WithTimeout(ctx, writeAttemptTimeout)
		defer cancel()
		return invoker(actx, method, req, reply, cc, opts...)
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}
