package kube2sky

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/spf13/pflag"

	"github.com/skypod/skypod/internal/logging"
	"github.com/skypod/skypod/skydns/msg"
)

// Config is kube2sky's flags: the 1.2 ones with their names and defaults
// (legacy-behaviour.md §1.1), then the new ones.
type Config struct {
	Domain              string
	EtcdServer          string
	EtcdMutationTimeout time.Duration
	KubeConfig          string
	KubeMasterURL       string
	HealthzPort         int
	EtcdCertFile        string
	EtcdKeyFile         string
	EtcdCAFile          string
	ResyncPeriod        time.Duration
	UseEndpointSlices   bool
	MetricsAddr         string
	PathPrefix          string
	LeaderElect         LeaderElection
	Log                 logging.Options
}

// LeaderElection is the --leader-elect flags, in kube-controller-manager's
// spelling and with its defaults (docs/compatibility.md, Additions).
type LeaderElection struct {
	Enabled           bool
	LeaseDuration     time.Duration
	RenewDeadline     time.Duration
	RetryPeriod       time.Duration
	ResourceName      string
	ResourceNamespace string
}

// NewConfig returns the legacy defaults.
func NewConfig() *Config {
	return &Config{
		Domain:              "cluster.local",
		EtcdServer:          "http://127.0.0.1:4001",
		EtcdMutationTimeout: 10 * time.Second,
		HealthzPort:         8081,
		ResyncPeriod:        30 * time.Minute,
		PathPrefix:          msg.DefaultPrefix,
		LeaderElect: LeaderElection{
			LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
			ResourceName: "kube2sky", ResourceNamespace: "kube-system",
		},
		Log: logging.DefaultOptions(),
	}
}

// AddFlags registers the flags. Underscored spellings (--kube_master_url)
// are accepted by the flag set's normalizer, as in 1.2.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Domain, "domain", c.Domain, "cluster domain; a trailing dot is added")
	fs.StringVar(&c.EtcdServer, "etcd-server", c.EtcdServer, "etcd URL (several, comma-separated, are accepted)")
	fs.DurationVar(&c.EtcdMutationTimeout, "etcd-mutation-timeout", c.EtcdMutationTimeout, "timeout of one etcd transaction; failures are retried with backoff")
	fs.StringVar(&c.KubeConfig, "kubecfg-file", c.KubeConfig, "kubeconfig file; with neither this nor --kube-master-url, the in-cluster service account is used")
	fs.StringVar(&c.KubeMasterURL, "kube-master-url", c.KubeMasterURL, "Kubernetes API server URL ($VARS are expanded); overrides the kubeconfig's server")
	fs.IntVar(&c.HealthzPort, "healthz-port", c.HealthzPort, "port of /readiness, /healthz and /metrics")
	fs.StringVar(&c.EtcdCertFile, "etcd-certfile", c.EtcdCertFile, "client certificate for etcd over TLS")
	fs.StringVar(&c.EtcdKeyFile, "etcd-keyfile", c.EtcdKeyFile, "client key for etcd over TLS")
	fs.StringVar(&c.EtcdCAFile, "etcd-cafile", c.EtcdCAFile, "CA certificate for etcd over TLS")
	fs.DurationVar(&c.ResyncPeriod, "resync-period", c.ResyncPeriod, "how often everything is compared with etcd and repaired")
	fs.BoolVar(&c.UseEndpointSlices, "use-endpointslices", c.UseEndpointSlices, "read discovery.k8s.io/v1 EndpointSlices instead of Endpoints")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "also serve /metrics, alone, on this address (e.g. :9154); /metrics stays on --healthz-port")
	fs.StringVar(&c.PathPrefix, "path-prefix", c.PathPrefix, "etcd directory of the SkyDNS records")
	le := &c.LeaderElect
	fs.BoolVar(&le.Enabled, "leader-elect", le.Enabled, "elect one writer among several kube2skys on one etcd through a coordination.k8s.io Lease; the others stand by with warm caches")
	fs.DurationVar(&le.LeaseDuration, "leader-elect-lease-duration", le.LeaseDuration, "how long a standby waits after the last renewal before taking the lease over")
	fs.DurationVar(&le.RenewDeadline, "leader-elect-renew-deadline", le.RenewDeadline, "how long the leader keeps trying to renew before it steps down; less than the lease duration")
	fs.DurationVar(&le.RetryPeriod, "leader-elect-retry-period", le.RetryPeriod, "wait between two attempts to acquire or renew the lease")
	fs.StringVar(&le.ResourceName, "leader-elect-resource-name", le.ResourceName, "name of the Lease")
	fs.StringVar(&le.ResourceNamespace, "leader-elect-resource-namespace", le.ResourceNamespace, "namespace of the Lease")
	c.Log.AddFlags(fs)
}

// Finish normalises and validates, returning the first problem as an error
// fit for a one-line exit message.
func (c *Config) Finish() error {
	c.Domain = dns.Fqdn(strings.ToLower(strings.TrimSpace(c.Domain)))
	if _, ok := dns.IsDomainName(c.Domain); !ok || c.Domain == "." {
		return fmt.Errorf("--domain: %q is not a domain name", c.Domain)
	}
	for _, u := range strings.Split(c.EtcdServer, ",") {
		if parsed, err := url.Parse(u); err != nil || parsed.Host == "" || (parsed.Scheme != "http" && parsed.Scheme != "https") {
			return fmt.Errorf("--etcd-server: %q is not an http(s) URL", u)
		}
	}
	if c.KubeMasterURL != "" {
		c.KubeMasterURL = os.ExpandEnv(c.KubeMasterURL)
		parsed, err := url.Parse(c.KubeMasterURL)
		if err != nil || parsed.Scheme == "" || parsed.Host == "" || strings.HasPrefix(parsed.Host, ":") {
			return fmt.Errorf("--kube-master-url: %q must be a URL with a scheme and a host", c.KubeMasterURL)
		}
	}
	if c.EtcdMutationTimeout <= 0 {
		return errors.New("--etcd-mutation-timeout: must be positive")
	}
	if c.ResyncPeriod <= 0 {
		return errors.New("--resync-period: must be positive")
	}
	if c.HealthzPort < 1 || c.HealthzPort > 65535 {
		return fmt.Errorf("--healthz-port: %d is not a port", c.HealthzPort)
	}
	if c.PathPrefix == "" || strings.Contains(c.PathPrefix, "/") {
		return fmt.Errorf("--path-prefix: %q must be one non-empty key segment", c.PathPrefix)
	}
	return c.LeaderElect.finish()
}

// finish checks what client-go's elector would otherwise panic or
// misbehave on, checked even when disabled so a typo shows at once.
func (le *LeaderElection) finish() error {
	switch {
	case le.RetryPeriod <= 0:
		return errors.New("--leader-elect-retry-period: must be positive")
	case le.RenewDeadline <= le.RetryPeriod:
		return errors.New("--leader-elect-renew-deadline: must be longer than --leader-elect-retry-period")
	case le.LeaseDuration <= le.RenewDeadline:
		// The gap is the leader's margin to stop before a standby may start.
		return errors.New("--leader-elect-lease-duration: must be longer than --leader-elect-renew-deadline")
	case le.ResourceName == "" || le.ResourceNamespace == "":
		return errors.New("--leader-elect-resource-name and --leader-elect-resource-namespace: must not be empty")
	}
	return nil
}
