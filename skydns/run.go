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
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/skypod/skypod/internal/backoff"
	"github.com/skypod/skypod/internal/etcdclient"
	"github.com/skypod/skypod/internal/httpserve"
	"github.com/skypod/skypod/internal/netcap"
)

// Run serves DNS until ctx ends, and returns once everything it started
// has stopped. cfg must have passed Finish. skydns binds its sockets and
// answers at once, from the flags and the resolv.conf nameservers:
// forwarded names are answered and names in the zone are SERVFAIL until
// the records have loaded, whether or not etcd is up. The /<prefix>/config
// overlay is read when etcd first answers, before the first list, and
// applied then (serving.applyOverlay).
func Run(ctx context.Context, cfg *Config, log *slog.Logger, reg *prometheus.Registry) error {
	raiseBindService(log)
	if len(cfg.Unsupported) > 0 {
		log.Warn("legacy metrics sinks are not supported; use the Prometheus metrics", "settings", cfg.Unsupported)
	}
	client, err := etcdclient.New(cfg.EtcdOptions().Client, log)
	if err != nil {
		return err
	}
	defer client.Close() // After every goroutine below has stopped.
	opts, err := cfg.Load(nil, readResolvConf)
	if err != nil {
		return err
	}
	return runServers(ctx, cfg, opts, client, log, reg)
}

// raiseBindService makes the image's file capability effective, so port 53
// binds as a non-root user whatever the runtime's unprivileged port start
// (internal/netcap). It stays effective: the /skydns/config overlay may
// move the sockets later. Where it is not permitted, binding still works
// on a high port or where the sysctl allows it, so that is no error.
func raiseBindService(log *slog.Logger) {
	state, err := netcap.RaiseBindService()
	if err != nil {
		log.Warn("cannot make cap_net_bind_service effective", "err", err)
		return
	}
	log.Info("cap_net_bind_service", "state", state)
}

// runServers binds the sockets and runs the watcher, the DNS servers and the
// HTTP endpoint under one group: the first to fail, or ctx, stops them all.
func runServers(ctx context.Context, cfg *Config, opts Options, client *clientv3.Client, log *slog.Logger, reg *prometheus.Registry) error {
	udp, tcp, metricsLn, err := bind(&opts, log)
	if err != nil {
		return err
	}

	index := NewIndex(opts.Etcd.PathPrefix)
	if opts.Autopath.Enabled {
		index.TrackPods() // Before the first list; the overlay cannot set --autopath.
	}
	metrics := NewMetrics(reg, index)
	reg.MustRegister(NewLegacyMetrics(metrics, cfg.LegacyMetrics.Namespace, cfg.LegacyMetrics.Subsystem))
	watcher := NewWatcher(client, opts.Etcd.PathPrefix, index, metrics, log, opts.Etcd.Timeout)
	g, gctx := errgroup.WithContext(ctx)
	s := &serving{
		ctx: gctx, g: g, log: log, self: newSelfCheck(udp[0].LocalAddr()),
		deps: Deps{Index: index, Metrics: metrics, Log: log, Context: gctx},
	}
	s.use(opts)
	s.listen(udp, tcp)
	reg.MustRegister(packedEntriesGauge(func() int { return s.handler.Load().PackedEntries() }))

	g.Go(func() error {
		// The overlay first: the records answer with its TTLs and domain
		// from the first, and etcd answers both or neither.
		if overlay := awaitOverlay(gctx, client, opts.Etcd, log); overlay != nil {
			if err := s.applyOverlay(cfg, overlay); err != nil {
				return err
			}
		}
		watcher.Run(gctx)
		return nil
	})
	if metricsLn != nil {
		mux := opsMux(opts.Serve, reg, watcher, s.self)
		g.Go(func() error { return httpserve.Serve(gctx, log, metricsLn, mux) })
	}
	log.Info("ready for queries", "domain", opts.Zone.Domain, "udp", udp[0].LocalAddr().String(), "udp_sockets", len(udp), "tcp", tcp.Addr().String(),
		"nameservers", opts.Forward.Nameservers, "no_rec", opts.Forward.NoRec, "etcd", opts.Etcd.Client.Endpoints)
	if err = g.Wait(); err != nil {
		log.Error("server stopped", "err", err)
	}
	log.Info("stopped")
	return err
}

// serving is the DNS side of skydns: the sockets, the servers reading
// them, and the handler those call, which the /<prefix>/config overlay
// replaces once it is read (and the sockets too, when it moves them).
// Only Run's goroutines change it, one at a time: at start, then once
// from the one that reads the overlay.
type serving struct {
	ctx  context.Context // Ends when skydns stops.
	g    *errgroup.Group
	log  *slog.Logger
	deps Deps
	self *selfCheck // Follows the UDP socket.

	handler     atomic.Pointer[Handler] // What the servers call; see ServeDNS.
	opts        Options                 // What the handler was built from.
	addrs       []net.Addr              // The DNS sockets' own addresses.
	stopLoops   context.CancelFunc      // Ends the handler's forwarding-loop probes.
	stopServers func()                  // Shuts the servers down and closes the sockets.
}

// ServeDNS passes the query to the current handler: one atomic load more
// than calling it, so the overlay can replace it under running servers.
func (s *serving) ServeDNS(w dns.ResponseWriter, m *dns.Msg) { s.handler.Load().ServeDNS(w, m) }

// use builds the handler from opts, already screened against the sockets,
// and makes it the one that answers.
func (s *serving) use(opts Options) {
	h := NewHandler(opts, s.deps)
	ctx, stop := context.WithCancel(s.ctx)
	s.g.Go(func() error { h.probeLoops(ctx); return nil })
	s.handler.Store(h)
	if s.stopLoops != nil {
		s.stopLoops()
	}
	s.opts, s.stopLoops = opts, stop
}

// listen runs the DNS servers on udp and tcp until skydns stops or
// stopServers is called.
func (s *serving) listen(udp []*net.UDPConn, tcp net.Listener) {
	ctx, stop := context.WithCancel(s.ctx)
	exited := []<-chan struct{}{
		serveUDPSockets(ctx, s.g, udp, s.handler.Load),
		serveDNS(ctx, s.g, &dns.Server{Listener: newTCPListener(ctx, tcp, s.opts.Serve.TCPMaxConns, s.deps.Metrics), Handler: s, Net: "tcp"}),
	}
	// Every UDP socket has the same address: the first stands for all.
	s.addrs = []net.Addr{udp[0].LocalAddr(), tcp.Addr()}
	s.self.follow(udp[0].LocalAddr())
	s.stopServers = func() {
		stop()
		for _, ch := range exited {
			<-ch
		}
	}
}

// applyOverlay applies /<prefix>/config, read once etcd answered, over the
// flags, as SkyDNS did at start: every setting takes effect, a new handler
// replacing the one the flags made. When it moves the sockets (dns_addr,
// systemd), the flags' sockets close first (the new address may cover
// theirs, 0.0.0.0 over 127.0.0.1) and the overlay's are bound; a bind
// that fails, like JSON that does not parse, stops skydns, as it did
// SkyDNS.
func (s *serving) applyOverlay(cfg *Config, overlay []byte) error {
	opts, err := cfg.Load(overlay, readResolvConf)
	if err != nil {
		return err
	}
	moves := opts.Serve.DNSAddr != s.opts.Serve.DNSAddr || opts.Serve.Systemd != s.opts.Serve.Systemd
	if !moves {
		opts.Forward, err = screenListened(opts.Forward, s.addrs, s.log)
		if err != nil {
			return fmt.Errorf("%s: %w", opts.Etcd.ConfigKey, err)
		}
		s.use(opts)
	} else {
		s.stopServers()
		udp, tcp, err := listenScreened(&opts, s.log)
		if err != nil {
			return fmt.Errorf("%s: %w", opts.Etcd.ConfigKey, err)
		}
		s.use(opts)
		s.listen(udp, tcp)
	}
	s.log.Info("applied config from etcd", "key", opts.Etcd.ConfigKey, "domain", opts.Zone.Domain,
		"nameservers", opts.Forward.Nameservers, "no_rec", opts.Forward.NoRec,
		"moved_sockets", moves, "udp", s.addrs[0].String(), "tcp", s.addrs[1].String())
	return nil
}

// bind opens the sockets: DNS (see listenScreened), and the HTTP endpoint
// unless turned off (nil). On an error none stays open.
func bind(opts *Options, log *slog.Logger) (udp []*net.UDPConn, tcp, metricsLn net.Listener, err error) {
	if udp, tcp, err = listenScreened(opts, log); err != nil {
		return nil, nil, nil, err
	}
	if opts.Serve.MetricsAddr != "" {
		if metricsLn, err = httpserve.Listen(opts.Serve.MetricsAddr); err != nil {
			closeAll(udp, tcp)
			return nil, nil, nil, fmt.Errorf("--metrics-addr: %w", err)
		}
	}
	return udp, tcp, metricsLn, nil
}

// listenScreened binds the DNS sockets of opts.Serve and, with their own
// addresses, screens the nameservers for skydns itself, which may change
// opts.Forward. On an error neither socket stays open.
func listenScreened(opts *Options, log *slog.Logger) ([]*net.UDPConn, net.Listener, error) {
	udp, tcp, err := listenDNS(opts.Serve)
	if err != nil {
		return nil, nil, err
	}
	if opts.Forward, err = screenListened(opts.Forward, []net.Addr{udp[0].LocalAddr(), tcp.Addr()}, log); err != nil {
		closeAll(udp, tcp)
		return nil, nil, err
	}
	return udp, tcp, nil
}

// serveDNS runs s in g until ctx ends, then shuts it down (which closes
// its socket), and returns a channel closed once it has stopped. The
// shutdown waits for the server to have started: one shut down before
// that would go on serving.
func serveDNS(ctx context.Context, g *errgroup.Group, s *dns.Server) <-chan struct{} {
	started, exited, stopped := make(chan struct{}), make(chan struct{}), make(chan struct{})
	s.NotifyStartedFunc = func() { close(started) }
	g.Go(func() error {
		defer close(exited)
		if err := s.ActivateAndServe(); err != nil && ctx.Err() == nil {
			return fmt.Errorf("dns server (%s): %w", s.Net, err)
		}
		return nil
	})
	g.Go(func() error {
		defer close(stopped)
		select {
		case <-started:
		case <-exited:
			return nil
		}
		<-ctx.Done()
		shutdownCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		_ = s.ShutdownContext(shutdownCtx) // Its error is the server's, reported above.
		<-exited
		return nil
	})
	return stopped
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

// awaitOverlay reads /<prefix>/config once etcd answers, trying again
// until it does (SkyDNS tried once and kept its flags for good): nil when
// the key is missing, or when ctx ends first.
func awaitOverlay(ctx context.Context, client etcdclient.Getter, opts EtcdOptions, log *slog.Logger) []byte {
	retry := backoff.Doubling{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for warned := false; ctx.Err() == nil; retry.Wait(ctx) {
		resp, err := etcdclient.GetWithin(ctx, client, opts.Timeout, opts.ConfigKey)
		switch {
		case err == nil && len(resp.Kvs) == 0:
			return nil
		case err == nil:
			return resp.Kvs[0].Value
		case !warned && ctx.Err() == nil:
			log.Warn("cannot read config from etcd; answering with the flags until it can", "key", opts.ConfigKey, "err", err)
			warned = true
		}
	}
	return nil
}

// listenDNS binds the DNS sockets: --addr (--udp-sockets UDP ones), or
// with --systemd the sockets systemd passed in (LISTEN_FDS), which SkyDNS
// also supported.
func listenDNS(opts ServeOptions) ([]*net.UDPConn, net.Listener, error) {
	if opts.Systemd {
		return systemdSockets()
	}
	udp, err := listenUDP(context.Background(), opts.DNSAddr, opts.UDPSockets)
	if err != nil {
		return nil, nil, fmt.Errorf("--addr: %w", err)
	}
	tcp, err := net.Listen("tcp", opts.DNSAddr)
	if err != nil {
		closeAll(udp, nil)
		return nil, nil, fmt.Errorf("--addr: %w", err)
	}
	return udp, tcp, nil
}

// closeAll closes the sockets of a bind that failed half way; tcp may be
// nil.
func closeAll(udp []*net.UDPConn, tcp net.Listener) {
	for _, c := range udp {
		c.Close()
	}
	if tcp != nil {
		tcp.Close()
	}
}

// systemdSockets takes one datagram and one stream socket from fds 3 on.
func systemdSockets() ([]*net.UDPConn, net.Listener, error) {
	if pid, _ := strconv.Atoi(os.Getenv("LISTEN_PID")); pid != os.Getpid() {
		return nil, nil, errors.New("--systemd: no sockets passed to this process (LISTEN_PID)")
	}
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	var udp *net.UDPConn
	var tcp net.Listener
	for fd := 3; fd < 3+n; fd++ {
		f := os.NewFile(uintptr(fd), "systemd-socket")
		if ln, err := net.FileListener(f); err == nil && tcp == nil {
			tcp = ln
		} else if pc, err := net.FilePacketConn(f); err == nil && udp == nil {
			udp, _ = pc.(*net.UDPConn)
		}
	}
	if udp == nil || tcp == nil {
		return nil, nil, fmt.Errorf("--systemd: need one UDP and one TCP socket among %d passed", n)
	}
	return []*net.UDPConn{udp}, tcp, nil
}
