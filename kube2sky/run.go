package kube2sky

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/skypod/skypod/internal/etcdclient"
	"github.com/skypod/skypod/internal/httpserve"
)

// workers is how many owners sync at once: etcd commits are the wait, and
// a few in flight keep the initial sync of thousands of services short.
const workers = 8

// Run mirrors the API server into etcd until ctx ends. cfg must have
// passed Finish. Its HTTP servers, informers and controller run as one
// group: Run returns once all have stopped, the first error stopping the
// rest, and only then closes the etcd client.
func Run(ctx context.Context, cfg *Config, log *slog.Logger, reg *prometheus.Registry) error {
	klog.SetSlogLogger(log.With("source", "client-go"))
	restCfg, err := restConfig(cfg)
	if err != nil {
		return err
	}
	// Protobuf, as Kubernetes' own controllers ask: the informers' first
	// lists (every Service and Endpoints in one response each) are a
	// fraction of their JSON size, and so is the garbage of decoding them.
	restCfg.ContentType = runtime.ContentTypeProtobuf
	restCfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	etcd, err := etcdclient.New(etcdclient.Options{
		Endpoints: etcdclient.SplitURLs(cfg.EtcdServer), CertFile: cfg.EtcdCertFile, KeyFile: cfg.EtcdKeyFile,
		CAFile: cfg.EtcdCAFile, DialTimeout: cfg.EtcdMutationTimeout,
	}, log)
	if err != nil {
		return err
	}
	defer etcd.Close()

	factory := informers.NewSharedInformerFactory(client, 0) // Our own resync compares with etcd instead.
	metrics := NewMetrics(reg)
	store, fence := NewEtcdStore(etcd, cfg.EtcdMutationTimeout), (*Fence)(nil)
	if cfg.LeaderElect.Enabled {
		fence = &Fence{Key: FenceKey(cfg.LeaderElect.ResourceNamespace, cfg.LeaderElect.ResourceName)}
		store = NewFencedEtcdStore(etcd, cfg.EtcdMutationTimeout, fence)
	}
	ctrl, err := NewController(cfg, factory, store, metrics, log)
	if err != nil {
		return err
	}
	var elected *elector
	if fence != nil {
		elected = &elector{cfg: cfg.LeaderElect, client: client, etcd: etcd, fence: fence, ctrl: ctrl, role: &role{}, metrics: metrics, log: log}
	}
	servers, err := listen(cfg, opsMux(reg, ctrl, elected), reg)
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, s := range servers {
		g.Go(func() error { return httpserve.Serve(gctx, log, s.ln, s.handler) })
	}
	g.Go(func() error {
		factory.Start(gctx.Done())
		<-gctx.Done()
		factory.Shutdown() // Waits for the informers' goroutines.
		return nil
	})
	g.Go(func() error {
		if elected != nil {
			return elected.run(gctx, cfg.ResyncPeriod)
		}
		metrics.leader.Set(1) // The only writer, as in 1.2.
		return ctrl.Run(gctx, workers, cfg.ResyncPeriod)
	})
	log.Info("kube2sky started", "domain", cfg.Domain, "etcd", cfg.EtcdServer, "api", restCfg.Host, "endpointslices", cfg.UseEndpointSlices)
	return g.Wait()
}

// server is one listener and what it serves.
type server struct {
	ln      net.Listener
	handler http.Handler
}

// listen binds --healthz-port for ops and, when set, --metrics-addr for
// /metrics alone.
func listen(cfg *Config, ops http.Handler, reg *prometheus.Registry) ([]server, error) {
	ln, err := httpserve.Listen(net.JoinHostPort("", strconv.Itoa(cfg.HealthzPort)))
	if err != nil {
		return nil, fmt.Errorf("--healthz-port: %w", err)
	}
	servers := []server{{ln: ln, handler: ops}}
	if cfg.MetricsAddr == "" {
		return servers, nil
	}
	mln, err := httpserve.Listen(cfg.MetricsAddr)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", httpserve.MetricsHandler(reg))
	return append(servers, server{ln: mln, handler: mux}), nil
}

// opsMux serves /readiness (200 once the first full sync is complete, as
// the legacy readiness probe expects on this port, and still 200 while etcd
// is unreachable: the body says so), /healthz (the sync loop is alive; see
// heartbeat) and /metrics (kept here when --metrics-addr also serves it,
// for scrapers configured before it). docs/architecture.md, "Probes".
// Under --leader-elect, elected's role decides both probes for a standby.
func opsMux(reg *prometheus.Registry, ctrl *Controller, elected *elector) *http.ServeMux {
	ready, alive := ctrl.Status, ctrl.Alive
	if elected != nil {
		ready = func() (bool, string) { return elected.role.status(ctrl) }
		alive = func() (bool, string) { return elected.role.alive(ctrl) }
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", httpserve.MetricsHandler(reg))
	mux.HandleFunc("/readiness", httpserve.StatusHandler(func(context.Context) (bool, string) { return ready() }))
	mux.HandleFunc("/healthz", httpserve.StatusHandler(func(context.Context) (bool, string) { return alive() }))
	return mux
}

// restConfig follows kube2sky 1.2: a kubeconfig (whose server
// --kube-master-url overrides), else the master URL alone with no
// credentials, else the pod's service account.
func restConfig(cfg *Config) (*rest.Config, error) {
	switch {
	case cfg.KubeConfig != "":
		c, err := clientcmd.BuildConfigFromFlags(cfg.KubeMasterURL, cfg.KubeConfig)
		if err != nil {
			return nil, fmt.Errorf("--kubecfg-file: %w", err)
		}
		return c, nil
	case cfg.KubeMasterURL != "":
		return &rest.Config{Host: cfg.KubeMasterURL}, nil
	default:
		c, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("no --kubecfg-file or --kube-master-url, and not in a cluster: %w", err)
		}
		return c, nil
	}
}
