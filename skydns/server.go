package skydns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skypod/skypod/internal/etcdclient"
	"github.com/skypod/skypod/internal/httpserve"
)

// Run serves DNS until ctx ends. cfg must have passed Finish; the etcd
// config key may still change it here, as SkyDNS read it at start.
func Run(ctx context.Context, cfg *Config, log *slog.Logger, reg *prometheus.Registry) error {
	client, err := etcdclient.New(etcdclient.Options{
		Endpoints: etcdclient.SplitURLs(cfg.Machines), CertFile: cfg.TLSPem, KeyFile: cfg.TLSKey, CAFile: cfg.CACert,
		DialTimeout: cfg.EtcdTimeout, AutoSync: cfg.Discover,
	}, log)
	if err != nil {
		return err
	}
	defer client.Close()
	if err := loadEtcdConfig(ctx, client, cfg, log); err != nil {
		return err
	}
	if err := cfg.LoadNameservers(); err != nil {
		return err
	}
	udp, tcp, err := listenDNS(cfg)
	if err != nil {
		return err
	}
	var metricsLn net.Listener
	if cfg.MetricsAddr != "" {
		if metricsLn, err = httpserve.Listen(cfg.MetricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
	}

	index := NewIndex(cfg.PathPrefix)
	metrics := NewMetrics(reg, index)
	watcher := NewWatcher(client, cfg.PathPrefix, index, metrics, log, cfg.EtcdTimeout)
	handler := NewHandler(cfg, index, metrics, log)
	reg.MustRegister(packedEntriesGauge(handler.packed.Len))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 4)
	go func() { watcher.Run(ctx); done <- nil }()
	servers := []*dns.Server{
		{PacketConn: udp, Handler: handler, Net: "udp"},
		{Listener: tcp, Handler: handler, Net: "tcp"},
	}
	for _, s := range servers {
		go func() { done <- s.ActivateAndServe() }()
	}
	if metricsLn != nil {
		go func() { done <- httpserve.Serve(ctx, log, metricsLn, opsMux(cfg, reg, watcher)) }()
	}
	log.Info("ready for queries", "domain", cfg.Domain, "udp", udp.LocalAddr().String(), "tcp", tcp.Addr().String(),
		"nameservers", cfg.Nameservers, "no_rec", cfg.NoRec, "etcd", cfg.Machines)

	select {
	case <-ctx.Done():
	case err = <-done:
		log.Error("server stopped", "err", err)
	}
	cancel()
	shutdownCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	for _, s := range servers {
		_ = s.ShutdownContext(shutdownCtx) // Already stopped if it failed.
	}
	log.Info("stopped")
	return err
}

// opsMux serves metrics, readiness (ready once loaded; the body says when
// the records are stale) and liveness.
func opsMux(cfg *Config, reg *prometheus.Registry, w *Watcher) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(cfg.MetricsPath, httpserve.MetricsHandler(reg))
	mux.HandleFunc("/ready", func(rw http.ResponseWriter, _ *http.Request) {
		ready, detail := w.Status()
		if !ready {
			http.Error(rw, detail, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(rw, detail)
	})
	mux.HandleFunc("/healthz", func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprintln(rw, "ok") })
	return mux
}

// loadEtcdConfig overlays /<prefix>/config once, as SkyDNS did. An
// unreachable etcd or a missing key means the flags stand; invalid JSON is
// an error.
func loadEtcdConfig(ctx context.Context, client *clientv3.Client, cfg *Config, log *slog.Logger) error {
	key := "/" + cfg.PathPrefix + "/config"
	gctx, cancel := context.WithTimeout(ctx, cfg.EtcdTimeout)
	defer cancel()
	resp, err := client.Get(gctx, key)
	if err != nil {
		log.Warn("cannot read config from etcd; using flags", "key", key, "err", err)
		return nil
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	if err := cfg.ApplyEtcdConfig(resp.Kvs[0].Value); err != nil {
		return err
	}
	if err := cfg.Finish(); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	log.Info("applied config from etcd", "key", key)
	return nil
}

// listenDNS binds the DNS sockets: --addr, or with --systemd the sockets
// systemd passed in (LISTEN_FDS), which SkyDNS also supported.
func listenDNS(cfg *Config) (net.PacketConn, net.Listener, error) {
	if cfg.Systemd {
		return systemdSockets()
	}
	udp, err := net.ListenPacket("udp", cfg.DNSAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("--addr: %w", err)
	}
	tcp, err := net.Listen("tcp", cfg.DNSAddr)
	if err != nil {
		udp.Close()
		return nil, nil, fmt.Errorf("--addr: %w", err)
	}
	return udp, tcp, nil
}

// systemdSockets takes one datagram and one stream socket from fds 3 on.
func systemdSockets() (net.PacketConn, net.Listener, error) {
	if pid, _ := strconv.Atoi(os.Getenv("LISTEN_PID")); pid != os.Getpid() {
		return nil, nil, errors.New("--systemd: no sockets passed to this process (LISTEN_PID)")
	}
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	var udp net.PacketConn
	var tcp net.Listener
	for fd := 3; fd < 3+n; fd++ {
		f := os.NewFile(uintptr(fd), "systemd-socket")
		if ln, err := net.FileListener(f); err == nil && tcp == nil {
			tcp = ln
		} else if pc, err := net.FilePacketConn(f); err == nil && udp == nil {
			udp = pc
		}
	}
	if udp == nil || tcp == nil {
		return nil, nil, fmt.Errorf("--systemd: need one UDP and one TCP socket among %d passed", n)
	}
	return udp, tcp, nil
}
