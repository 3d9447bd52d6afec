// Package etcdclient builds the etcd v3 client both skydns and kube2sky
// use, from legacy-style flags: URLs and optional TLS files.
package etcdclient

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
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

// New returns a client. It does not wait for etcd to be reachable: callers
// retry their own requests, so a server may start before its etcd.
func New(o Options, log *slog.Logger) (*clientv3.Client, error) {
	if len(o.Endpoints) == 0 {
		return nil, fmt.Errorf("no etcd endpoints")
	}
	cfg := clientv3.Config{
		Endpoints:   o.Endpoints,
		DialTimeout: o.DialTimeout,
		Logger:      zap.NewNop(), // Its errors reach us as returned errors; we log those.
	}
	if o.AutoSync {
		cfg.AutoSyncInterval = 30 * time.Second
	}
	if o.CertFile != "" || o.KeyFile != "" || o.CAFile != "" || strings.HasPrefix(o.Endpoints[0], "https://") {
		tlsCfg, err := tlsConfig(o)
		if err != nil {
			return nil, err
		}
		cfg.TLS = tlsCfg
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", o.Endpoints, err)
	}
	log.Debug("etcd client created", "endpoints", o.Endpoints)
	return c, nil
}

func tlsConfig(o Options) (*tls.Config, error) {
	info := transport.TLSInfo{CertFile: o.CertFile, KeyFile: o.KeyFile, TrustedCAFile: o.CAFile}
	if o.CertFile == "" && o.KeyFile == "" {
		if o.CAFile == "" {
			return &tls.Config{MinVersion: tls.VersionTLS12}, nil
		}
		info = transport.TLSInfo{TrustedCAFile: o.CAFile}
		return info.ClientConfig()
	}
	c, err := info.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd TLS files: %w", err)
	}
	return c, nil
}
