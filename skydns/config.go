// Package skydns answers DNS for a zone from SkyDNS records kept in etcd.
// It lists the prefix once and then watches it into an in-memory index, so
// no query ever waits on etcd.
package skydns

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/spf13/pflag"

	"github.com/skypod/skypod/internal/logging"
	"github.com/skypod/skypod/skydns/msg"
)

// Defaults of SkyDNS 2.5.2c (legacy-behaviour.md §2.1, §2.2).
const (
	defaultDomain     = "skydns.local."
	defaultAddr       = "127.0.0.1:53"
	defaultMachines   = "http://127.0.0.1:4001"
	defaultHostmaster = "hostmaster@skydns.local."
	defaultTTL        = 3600
	defaultMinTTL     = 60
	defaultPriority   = 10
	defaultNdots      = 2
	defaultRCacheTTL  = 60
	defaultRTimeout   = 2 * time.Second

	// defaultAnswerCache packed replies: about 270 bytes of heap each for
	// a service's single address (measured when an entry held one Version;
	// its list of reads and answer span now add some 60), so some 10 MiB
	// when full; enough for the A, AAAA and SRV names of 10,000 services.
	defaultAnswerCache = 32768

	// defaultMaxUDPSize is the DNS flag day's buffer size (2020): a UDP
	// reply no larger does not fragment on any common path, and a 44-byte
	// query cannot draw 48 KB of it.
	defaultMaxUDPSize = 1232

	// defaultTCPMaxConns TCP connections at once: far more than the
	// truncated-reply retries of a cluster, each for one query, need.
	defaultTCPMaxConns = 1024

	// defaultMaxForwards upstream queries in flight at once: each holds a
	// goroutine, a socket and a buffer for up to two read timeouts, so a
	// flood of names toward an upstream that never answers is bounded at a
	// few megabytes.
	defaultMaxForwards = 1000

	// maxUDPSockets bounds --udp-sockets: past a socket per core more only
	// add buffers and goroutines, and no node has this many cores.
	maxUDPSockets = 256
)

// Config is what the flags and the environment set, in the shape of the
// legacy /skydns/config JSON (its tags are that key's names, so the etcd
// overlay decodes straight into a copy of it). Nothing runs from a Config:
// Load turns it, once, into the Options every component is built from.
type Config struct {
	DNSAddr     string        `json:"dns_addr,omitempty"`
	Domain      string        `json:"domain,omitempty"`
	Local       string        `json:"local,omitempty"`
	Hostmaster  string        `json:"hostmaster,omitempty"`
	DNSSEC      string        `json:"dnssec,omitempty"`
	RoundRobin  bool          `json:"round_robin"`
	NSRotate    bool          `json:"ns_rotate"`
	Nameservers []string      `json:"nameservers,omitempty"`
	NoRec       bool          `json:"no_rec,omitempty"`
	ReadTimeout time.Duration `json:"read_timeout,omitempty"`
	Priority    uint16        `json:"priority"`
	TTL         uint32        `json:"ttl"`
	MinTTL      uint32        `json:"min_ttl"`
	SCache      int           `json:"scache,omitempty"`
	RCache      int           `json:"rcache,omitempty"`
	RCacheTTL   int           `json:"rcache_ttl,omitempty"`
	Ndots       int           `json:"ndot"`
	Systemd     bool          `json:"systemd,omitempty"`

	// Flags only: they choose where the config comes from, or are new.
	Machines    string          `json:"-"`
	TLSKey      string          `json:"-"`
	TLSPem      string          `json:"-"`
	CACert      string          `json:"-"`
	Discover    bool            `json:"-"`
	StubZones   bool            `json:"-"`
	Verbose     bool            `json:"-"`
	PathPrefix  string          `json:"-"`
	ResolvConf  string          `json:"-"`
	MetricsAddr string          `json:"-"`
	MetricsPath string          `json:"-"`
	AnswerCache int             `json:"-"`
	MaxUDPSize  int             `json:"-"`
	TCPMaxConns int             `json:"-"`
	MaxForwards int             `json:"-"`
	UDPSockets  int             `json:"-"`
	LoopDetect  bool            `json:"-"`
	EtcdTimeout time.Duration   `json:"-"`
	Log         logging.Options `json:"-"`
	// LegacyMetrics name SkyDNS 2.5's metric families: PROMETHEUS_NAMESPACE
	// and PROMETHEUS_SUBSYSTEM (legacymetrics.go).
	LegacyMetrics struct{ Namespace, Subsystem string } `json:"-"`
	// Unsupported are the legacy settings given that skydns does not act
	// on (Graphite, StatHat), reported once at start.
	Unsupported []string `json:"-"`

	// Autopath walks a pod's search list for it (autopath.go);
	// AutopathSearch are the host search domains that end the list, from
	// --autopath-search or else the search line of AutopathResolvConf
	// (default --resolv-conf).
	Autopath           bool     `json:"-"`
	AutopathSearch     []string `json:"-"`
	AutopathResolvConf string   `json:"-"`

	// fromResolvConf: Load took the nameservers from --resolv-conf.
	fromResolvConf bool
	// signingKey is the pair DNSSEC names, loaded by Finish.
	signingKey *SigningKey
}

// NewConfig returns the legacy defaults, with the legacy environment
// variables applied on top (a flag given on the command line wins over both).
// The UDP sockets default to one per core skydns may use (GOMAXPROCS,
// which follows the container's CPU limit; see defaultUDPSockets).
func NewConfig(getenv func(string) string) *Config {
	c := &Config{
		DNSAddr:     envOr(getenv, "SKYDNS_ADDR", defaultAddr),
		Domain:      envOr(getenv, "SKYDNS_DOMAIN", defaultDomain),
		Hostmaster:  defaultHostmaster,
		RoundRobin:  true,
		NSRotate:    true,
		ReadTimeout: defaultRTimeout,
		SCache:      10000,
		RCacheTTL:   defaultRCacheTTL,
		Machines:    envOr(getenv, "ETCD_MACHINES", ""),
		TLSKey:      getenv("ETCD_TLSKEY"),
		TLSPem:      getenv("ETCD_TLSPEM"),
		CACert:      getenv("ETCD_CACERT"),
		PathPrefix:  envOr(getenv, "SKYDNS_PATH_PREFIX", msg.DefaultPrefix),
		ResolvConf:  "/etc/resolv.conf",
		MetricsAddr: ":9153",
		MetricsPath: envOr(getenv, "PROMETHEUS_PATH", "/metrics"),
		EtcdTimeout: 5 * time.Second,
		AnswerCache: defaultAnswerCache,
		MaxUDPSize:  defaultMaxUDPSize,
		TCPMaxConns: defaultTCPMaxConns,
		MaxForwards: defaultMaxForwards,
		UDPSockets:  defaultUDPSockets(),
		LoopDetect:  true,
		Log:         logging.DefaultOptions(),
	}
	if ns := getenv("SKYDNS_NAMESERVERS"); ns != "" {
		c.Nameservers = strings.Split(ns, ",")
	}
	if port := getenv("PROMETHEUS_PORT"); port != "" {
		c.MetricsAddr = ":" + port // The legacy way to turn metrics on.
	}
	c.LegacyMetrics.Namespace = getenv("PROMETHEUS_NAMESPACE")
	c.LegacyMetrics.Subsystem = envOr(getenv, "PROMETHEUS_SUBSYSTEM", "skydns")
	for _, key := range []string{"GRAPHITE_SERVER", "GRAPHITE_PREFIX", "STATHAT_USER"} {
		if v := getenv(key); v != "" {
			c.Unsupported = append(c.Unsupported, key+"="+v)
		}
	}
	return c
}

// defaultUDPSockets is one per core skydns may use, where SO_REUSEPORT
// lets them share the port.
func defaultUDPSockets() int {
	if !unixSockets {
		return 1
	}
	return runtime.GOMAXPROCS(0)
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// nameserverList adapts a comma-separated flag to Config.Nameservers.
type nameserverList struct{ list *[]string }

func (n nameserverList) String() string { return strings.Join(*n.list, ",") }
func (n nameserverList) Type() string   { return "ip:port,..." }
func (n nameserverList) Set(v string) error {
	*n.list = nil
	if v != "" {
		*n.list = strings.Split(v, ",")
	}
	return nil
}

// AddFlags registers the legacy flags with their legacy names, then the new
// ones in the same style.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Domain, "domain", c.Domain, "domain to anchor requests to (SKYDNS_DOMAIN)")
	fs.StringVar(&c.DNSAddr, "addr", c.DNSAddr, "ip:port to serve DNS on, UDP and TCP (SKYDNS_ADDR)")
	fs.Var(nameserverList{&c.Nameservers}, "nameservers", "nameservers to forward to, comma-separated ip:port (SKYDNS_NAMESERVERS); default: those of --resolv-conf")
	fs.BoolVar(&c.NoRec, "no-rec", c.NoRec, "never forward: answer only from etcd")
	fs.StringVar(&c.Machines, "machines", c.Machines, "etcd client URLs, comma-separated (ETCD_MACHINES); default "+defaultMachines)
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "client key file for etcd over TLS (ETCD_TLSKEY)")
	fs.StringVar(&c.TLSPem, "tls-pem", c.TLSPem, "client certificate file for etcd over TLS (ETCD_TLSPEM)")
	fs.StringVar(&c.CACert, "ca-cert", c.CACert, "CA certificate file for etcd over TLS (ETCD_CACERT)")
	fs.StringVar(&c.DNSSEC, "dnssec", c.DNSSEC, "basename of the zone's DNSSEC key pair, <basename>.key and <basename>.private as dnssec-keygen writes them: sign replies to DO requests")
	fs.StringVar(&c.Local, "local", c.Local, "name that local.dns.<domain> resolves as")
	fs.DurationVar(&c.ReadTimeout, "rtimeout", c.ReadTimeout, "read and write timeout of forwarded queries")
	fs.BoolVar(&c.RoundRobin, "round-robin", c.RoundRobin, "shuffle A and AAAA answers")
	fs.BoolVar(&c.NSRotate, "ns-rotate", c.NSRotate, "spread forwarded queries over all nameservers instead of preferring the first")
	fs.BoolVar(&c.Discover, "discover", c.Discover, "keep the etcd member list current from the cluster itself")
	fs.BoolVar(&c.StubZones, "stubzones", c.StubZones, "forward zones listed under stub.dns.<domain> to their own nameservers")
	fs.BoolVar(&c.Verbose, "verbose", c.Verbose, "log every query (same as --log-level=debug)")
	fs.BoolVar(&c.Systemd, "systemd", c.Systemd, "take the DNS sockets from systemd socket activation and ignore --addr")
	fs.StringVar(&c.Hostmaster, "hostmaster", c.Hostmaster, "hostmaster mailbox in the SOA record")
	fs.IntVar(&c.SCache, "scache", c.SCache, "signatures kept for reuse with --dnssec (0 = none)")
	fs.IntVar(&c.RCache, "rcache", c.RCache, "capacity of the forwarded-response cache (0 = off)")
	fs.IntVar(&c.RCacheTTL, "rcache-ttl", c.RCacheTTL, "seconds a cached response lives; also the TTL of upstream answers to CNAME and SRV targets")
	fs.StringVar(&c.PathPrefix, "path-prefix", c.PathPrefix, "etcd directory the records live under (SKYDNS_PATH_PREFIX)")

	fs.StringVar(&c.ResolvConf, "resolv-conf", c.ResolvConf, "file whose nameservers are used when --nameservers is empty")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "address of /metrics and /ready (PROMETHEUS_PORT sets the port); empty disables")
	fs.StringVar(&c.MetricsPath, "metrics-path", c.MetricsPath, "path of the Prometheus metrics (PROMETHEUS_PATH)")
	fs.IntVar(&c.AnswerCache, "answer-cache", c.AnswerCache, "capacity of the packed local answers, exact for the current records (0 = off)")
	fs.IntVar(&c.MaxForwards, "max-forwards", c.MaxForwards, "upstream queries in flight at once (forwarded, stub and chased); past it a query is SERVFAIL at once")
	fs.BoolVar(&c.LoopDetect, "loop-detect", c.LoopDetect, "at start, send each nameserver a probe query; if one comes back to skydns (a forwarding loop), log it and stop forwarding")
	fs.BoolVar(&c.Autopath, "autopath", c.Autopath, "answer a pod's search-list walk in one query: an NXDOMAIN for <x>.<ns>.svc.<domain> from a pod of <ns> becomes a CNAME to the first of its other search names that exists")
	fs.StringSliceVar(&c.AutopathSearch, "autopath-search", c.AutopathSearch, "with --autopath: the host search domains ending a pod's search list, comma-separated; default: the search line of --autopath-resolv-conf")
	fs.StringVar(&c.AutopathResolvConf, "autopath-resolv-conf", c.AutopathResolvConf, "with --autopath: file whose search line gives the host search domains; default --resolv-conf")
	fs.IntVar(&c.UDPSockets, "udp-sockets", c.UDPSockets, "UDP sockets bound on the DNS address with SO_REUSEPORT, each read by its own goroutine (1-256; default one per core); --systemd serves the one socket passed")
	fs.IntVar(&c.TCPMaxConns, "tcp-max-conns", c.TCPMaxConns, "TCP connections served at once; one more is closed when accepted")
	fs.IntVar(&c.MaxUDPSize, "max-udp-size", c.MaxUDPSize, "largest UDP reply, whatever buffer the client advertises (512-65535); also the EDNS0 buffer advertised upstream")
	fs.DurationVar(&c.EtcdTimeout, "etcd-timeout", c.EtcdTimeout, "timeout of each etcd request (list, health check)")
	c.Log.AddFlags(fs)
}

// Finish normalises the configuration and fills the derived defaults. It
// returns the first problem as an error fit for a one-line exit message.
func (c *Config) Finish() error {
	if c.Domain == "" {
		return errors.New("--domain: must not be empty")
	}
	c.Domain = dns.Fqdn(strings.ToLower(c.Domain))
	if _, ok := dns.IsDomainName(c.Domain); !ok {
		return fmt.Errorf("--domain: %q is not a domain name", c.Domain)
	}
	if !c.Systemd {
		if err := checkHostPort("--addr", c.DNSAddr); err != nil {
			return err
		}
	}
	for _, ns := range c.Nameservers {
		if err := checkHostPort("--nameservers", ns); err != nil {
			return err
		}
	}
	if err := c.refuseSelfNameservers(); err != nil {
		return err
	}
	if c.Machines == "" {
		c.Machines = defaultMachines
	}
	if err := c.loadSigningKey(); err != nil {
		return err
	}
	if c.PathPrefix == "" || strings.Contains(c.PathPrefix, "/") {
		return fmt.Errorf("--path-prefix: %q must be one non-empty key segment", c.PathPrefix)
	}
	if c.Hostmaster == "" {
		c.Hostmaster = "hostmaster@" + c.Domain
	}
	c.Hostmaster = dns.Fqdn(strings.Replace(c.Hostmaster, "@", ".", 1))
	if c.Local != "" {
		c.Local = dns.Fqdn(strings.ToLower(c.Local))
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = defaultRTimeout
	}
	if c.MaxUDPSize < dns.MinMsgSize || c.MaxUDPSize > dns.MaxMsgSize {
		return fmt.Errorf("--max-udp-size: %d must be 512-65535", c.MaxUDPSize)
	}
	if c.MaxForwards < 1 {
		return fmt.Errorf("--max-forwards: %d must be at least 1", c.MaxForwards)
	}
	if c.TCPMaxConns < 1 {
		return fmt.Errorf("--tcp-max-conns: %d must be at least 1", c.TCPMaxConns)
	}
	if c.UDPSockets < 1 || c.UDPSockets > maxUDPSockets {
		return fmt.Errorf("--udp-sockets: %d must be 1-%d", c.UDPSockets, maxUDPSockets)
	}
	if c.AnswerCache < 0 {
		return fmt.Errorf("--answer-cache: %d must not be negative", c.AnswerCache)
	}
	if err := c.finishAutopath(readResolvConf); err != nil {
		return err
	}
	c.fillZeroes()
	if c.Verbose {
		c.Log.Level = "debug"
	}
	return nil
}

// loadSigningKey loads the key pair -dnssec names, at start and again
// when the etcd overlay is applied (it may name another, or another
// domain), so a bad key stops skydns with one line before it serves.
func (c *Config) loadSigningKey() error {
	key, err := loadSigningKey(c.DNSSEC, c.Domain)
	if err != nil {
		return fmt.Errorf("--dnssec: %w", err)
	}
	c.signingKey = key
	return nil
}

// fillZeroes is SkyDNS's SetDefaults for the values only etcd can set.
func (c *Config) fillZeroes() {
	if c.TTL == 0 {
		c.TTL = defaultTTL
	}
	if c.MinTTL == 0 {
		c.MinTTL = defaultMinTTL
	}
	if c.Priority == 0 {
		c.Priority = defaultPriority
	}
	if c.Ndots <= 0 {
		c.Ndots = defaultNdots
	}
	if c.RCacheTTL <= 0 {
		c.RCacheTTL = defaultRCacheTTL
	}
	if c.RCache < 0 {
		c.RCache = 0
	}
}

// checkHostPort enforces SkyDNS's rule: an IP literal and a port 1-65535.
func checkHostPort(flag, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s: %q: %v", flag, addr, err)
	}
	if net.ParseIP(host) == nil {
		return fmt.Errorf("%s: %q: host must be an IP address", flag, addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%s: %q: port must be 1-65535", flag, addr)
	}
	return nil
}
