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
	"golang.org/x/sync/errgroup"

	"github.com/skypod/skypod/internal/etcdclient"
	"github.com/skypod/skypod/internal/httpserve"
)

// Run serves DNS until ctx ends, and returns once everything it started
// has stopped. cfg must have passed Finish; the /<prefix>/config overlay
// and the resolv.conf nameservers complete it into Options here, once,
// before anything starts.
func Run(ctx context.Context, cfg *Config, log *slog.Logger, reg *prometheus.Registry) error {
	etcdOpts := cfg.EtcdOptions()
	client, err := etcdclient.New(etcdOpts.Client, log)
	if err != nil {
		return err
	}
	defer client.Close() // After every goroutine below has stopped.
	overlay := readOverlay(ctx, client, etcdOpts, log)
	opts, err := cfg.Load(overlay, readResolvConf)
	if err != nil {
		return err
	}
	if overlay != nil {
		log.Info("applied config from etcd", "key", etcdOpts.ConfigKey)
	}
	return runServers(ctx, opts, client, log, reg)
}

// runServers binds the sockets and runs the watcher, the DNS servers and the
// HTTP endpoint under one group: the first to fail, or ctx, stops them all.
func runServers(ctx context.Context, opts Options, client *clientv3.Client, log *slog.Logger, reg *prometheus.Registry) error {
	udp, tcp, metricsLn, err := bind(&opts, log)
	if err != nil {
		return err
	}

	index := NewIndex(opts.Etcd.PathPrefix)
	metrics := NewMetrics(reg, index)
	watcher := NewWatcher(client, opts.Etcd.PathPrefix, index, metrics, log, opts.Etcd.Timeout)
	g, gctx := errgroup.WithContext(ctx)
	handler := NewHandler(opts, Deps{Index: index, Metrics: metrics, Log: log, Context: gctx})
	reg.MustRegister(packedEntriesGauge(handler.PackedEntries))

	g.Go(func() error { watcher.Run(gctx); return nil })
	g.Go(func() error { handler.probeLoops(gctx); return nil })
	for _, s := range []*dns.Server{
		{PacketConn: udp, Handler: handler, Net: "udp"},
		{Listener: newTCPListener(gctx, tcp, opts.Serve.TCPMaxConns, metrics), Handler: handler, Net: "tcp"},
	} {
		serveDNS(gctx, g, s)
	}
	if metricsLn != nil {
		mux := opsMux(opts.Serve, reg, watcher, newSelfCheck(udp.LocalAddr()))
		g.Go(func() error { return httpserve.Serve(gctx, log, metricsLn, mux) })
	}
	log.Info("ready for queries", "domain", opts.Zone.Domain, "udp", udp.LocalAddr().String(), "tcp", tcp.Addr().String(),
		"nameservers", opts.Forward.Nameservers, "no_rec", opts.Forward.NoRec, "etcd", opts.Etcd.Client.Endpoints)
	if err = g.Wait(); err != nil {
		log.Error("server stopped", "err", err)
	}
	log.Info("stopped")
	return err
}

// bind opens the sockets: DNS, and the HTTP endpoint unless turned off
// (nil). With the DNS sockets' own addresses it screens the nameservers
// for skydns itself, which may change opts. On an error none stays open.
func bind(opts *Options, log *slog.Logger) (udp net.PacketConn, tcp, metricsLn net.Listener, err error) {
	if udp, tcp, err = listenDNS(opts.Serve); err != nil {
		return nil, nil, nil, err
	}
	opts.Forward, err = screenListened(opts.Forward, []net.Addr{udp.LocalAddr(), tcp.Addr()}, log)
	if err == nil && opts.Serve.MetricsAddr != "" {
		if metricsLn, err = httpserve.Listen(opts.Serve.MetricsAddr); err != nil {
			err = fmt.Errorf("--metrics-addr: %w", err)
		}
	}
	if err != nil {
		udp.Close()
		tcp.Close()
		return nil, nil, nil, err
	}
	return udp, tcp, metricsLn, nil
}

// serveDNS runs s in g until ctx ends, then shuts it down. The shutdown
// waits for the server to have started: one shut down before that would
// go on serving.
func serveDNS(ctx context.Context, g *errgroup.Group, s *dns.Server) {
	started, exited := make(chan struct{}), make(chan struct{})
	s.NotifyStartedFunc = func() { close(started) }
	g.Go(func() error {
		defer close(exited)
		if err := s.ActivateAndServe(); err != nil && ctx.Err() == nil {
			return fmt.Errorf("dns server (%s): %w", s.Net, err)
		}
		return nil
	})
	g.Go(func() error {
		select {
		case <-started:
		case <-exited:
			return nil
		}
		<-ctx.Done()
		shutdownCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		_ = s.ShutdownContext(shutdownCtx) // Its error is the server's, reported above.
		return nil
	})
}

// opsMux serves metrics, readiness (ready once loaded, and staying ready
// while etcd is away; the body says when the records are stale) and
// liveness (the DNS server answers a query sent to itself; see selfCheck).
// docs/architecture.md, "Probes", says why each means what it does.
func opsMux(opts ServeOptions, reg *prometheus.Registry, w *Watcher, self *selfCheck) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(opts.MetricsPath, httpserve.MetricsHandler(reg))
	mux.HandleFunc("/ready", httpserve.StatusHandler(func(context.Context) (bool, string) { return w.Status() }))
	mux.HandleFunc("/healthz", httpserve.StatusHandler(self.Status))
	return mux
}

// readOverlay reads /<prefix>/config once, as SkyDNS did: nil when the
// key is missing or etcd cannot be reached (the flags stand).
func readOverlay(ctx context.Context, client *clientv3.Client, opts EtcdOptions, log *slog.Logger) []byte {
	gctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	resp, err := client.Get(gctx, opts.ConfigKey)
	if err != nil {
		log.Warn("cannot read config from etcd; using flags", "key", opts.ConfigKey, "err", err)
		return nil
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	return resp.Kvs[0].Value
}

// listenDNS binds the DNS sockets: --addr, or with --systemd the sockets
// systemd passed in (LISTEN_FDS), which SkyDNS also supported.
func listenDNS(opts ServeOptions) (net.PacketConn, net.Listener, error) {
	if opts.Systemd {
		return systemdSockets()
	}
	udp, err := net.ListenPacket("udp", opts.DNSAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("--addr: %w", err)
	}
	tcp, err := net.Listen("tcp", opts.DNSAddr)
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
