package skydns

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"time"

	"github.com/miekg/dns"

	"github.com/skypod/skypod/internal/etcdclient"
)

// Options is the configuration skydns runs with: flags and environment,
// and once etcd has first answered, the /<prefix>/config overlay merged
// over them (Run starts with the first and replaces its handler, and
// sockets if they move, with one built from the second). It is a value;
// each component is handed a copy of its part through its constructor,
// and nothing changes it afterwards.
type Options struct {
	Zone    ZoneOptions
	Reply   ReplyOptions
	Forward ForwardOptions
	Serve   ServeOptions
	Etcd    EtcdOptions

	// AnswerCache is how many packed in-zone replies are kept; 0: none.
	AnswerCache int
	// SignatureCache is how many RRSIGs are kept (-scache) when the zone
	// is signed (Zone.Key).
	SignatureCache int
	// StubZones turns on forwarding of the zones under stub.dns.<domain>.
	StubZones bool
	// Autopath walks the search lists of pods for them (--autopath).
	Autopath AutopathOptions
}

// AutopathOptions turn on the server-side search-list walk (autopath.go).
type AutopathOptions struct {
	Enabled bool
	// Search are the host search domains ending a pod's search list after
	// <ns>.svc.<domain>, svc.<domain> and <domain>: lowercase, fully
	// qualified, none inside the domain.
	Search []string
}

// ZoneOptions shape the answers built from the records.
type ZoneOptions struct {
	Domain      string // Lowercase and fully qualified.
	Local       string // The name local.dns.<Domain> answers as; "" for none.
	Hostmaster  string // The SOA's RNAME, as a domain name.
	TTL         uint32 // For records that set none; also the SOA's own TTL.
	MinTTL      uint32 // Of negative answers, and the SOA minimum.
	Priority    uint16 // For records whose priority is 0.
	UpstreamTTL uint32 // Given to upstream answers for chased targets.
	// Key signs the zone's replies to DO requests (-dnssec); nil: unsigned.
	// The resolver answers DNSKEY at the apex with it, signed or not.
	Key *SigningKey
}

// ReplyOptions are the post-processing of answers built from the records.
type ReplyOptions struct {
	RoundRobin bool   // Shuffle address answers per query.
	MaxTTL     uint32 // Where the search for an answer set's minimum TTL starts.
	MaxUDPSize uint16 // The largest UDP reply, whatever the client advertises.
}

// ForwardOptions say where names outside the zone go.
type ForwardOptions struct {
	Nameservers []string      // ip:port; empty: nothing is forwarded.
	NoRec       bool          // Never forward (-no-rec).
	Rotate      bool          // Start at the query's id instead of the first server.
	Ndots       int           // Names with fewer labels are never forwarded.
	Timeout     time.Duration // Of one exchange with one server.
	CacheSize   int           // Forwarded replies kept (-rcache); 0: none.
	CacheTTL    time.Duration // How long one is kept (-rcache-ttl).
	UDPSize     uint16        // The largest EDNS0 buffer advertised upstream.
	MaxInFlight int           // Upstream queries at once.
	LoopDetect  bool          // Probe for forwarding loops (--loop-detect).
	// FromResolvConf: the nameservers are the resolv.conf file's, not given
	// explicitly; one that is skydns itself is then dropped, not an error.
	FromResolvConf bool
}

// ServeOptions are where skydns listens.
type ServeOptions struct {
	DNSAddr     string // UDP and TCP, unless Systemd.
	Systemd     bool   // Take the sockets from systemd instead.
	MetricsAddr string // "" turns the HTTP endpoint off.
	MetricsPath string
	TCPMaxConns int // Connections served at once.
	UDPSockets  int // Bound on DNSAddr with SO_REUSEPORT when more than one.
}

// EtcdOptions are how skydns reaches its records.
type EtcdOptions struct {
	Client     etcdclient.Options
	PathPrefix string        // One key segment: records live under /<PathPrefix>/.
	ConfigKey  string        // /<PathPrefix>/config, the overlay's key.
	Timeout    time.Duration // Of each request (list, probe, the overlay's read).
}

// resolvConfReader reads a resolv.conf file; a missing file is
// os.ErrNotExist.
type resolvConfReader func(path string) (*dns.ClientConfig, error)

// readResolvConf is the real resolvConfReader.
func readResolvConf(path string) (*dns.ClientConfig, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	return dns.ClientConfigFromFile(path)
}

// EtcdOptions are known from the flags alone: they say where the overlay
// that Load takes is read from.
func (c *Config) EtcdOptions() EtcdOptions {
	return EtcdOptions{
		Client: etcdclient.Options{
			Endpoints: etcdclient.SplitURLs(c.Machines), CertFile: c.TLSPem, KeyFile: c.TLSKey, CAFile: c.CACert,
			DialTimeout: c.EtcdTimeout, AutoSync: c.Discover,
		},
		PathPrefix: c.PathPrefix, ConfigKey: "/" + c.PathPrefix + "/config", Timeout: c.EtcdTimeout,
	}
}

// Load completes the configuration, the one place that does: the JSON of
// /<prefix>/config (nil when the key is absent) overrides flags, as SkyDNS
// let it, and the nameservers come from the resolv.conf file when neither
// named any. c, already through Finish, is not changed.
func (c *Config) Load(overlay []byte, resolvConf resolvConfReader) (Options, error) {
	merged := *c
	merged.Nameservers = slices.Clone(c.Nameservers)
	if overlay != nil {
		if err := json.Unmarshal(overlay, &merged); err != nil {
			return Options{}, fmt.Errorf("/%s/config: %w", c.PathPrefix, err)
		}
		if err := merged.Finish(); err != nil {
			return Options{}, fmt.Errorf("/%s/config: %w", c.PathPrefix, err)
		}
	}
	if err := merged.fillNameservers(resolvConf); err != nil {
		return Options{}, err
	}
	return merged.options(), nil
}

// fillNameservers takes the resolv.conf file's servers when none were
// given. A missing file means no nameservers, as before; a file that does
// not parse is an error.
func (c *Config) fillNameservers(read resolvConfReader) error {
	if len(c.Nameservers) > 0 || c.NoRec || c.ResolvConf == "" {
		return nil
	}
	cc, err := read(c.ResolvConf)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--resolv-conf: %w", err)
	}
	for _, s := range cc.Servers {
		c.Nameservers = append(c.Nameservers, net.JoinHostPort(s, cc.Port))
	}
	c.fromResolvConf = len(c.Nameservers) > 0
	return nil
}

// options splits a finished Config into each component's part.
func (c *Config) options() Options {
	return Options{
		Zone: ZoneOptions{
			Domain: c.Domain, Local: c.Local, Hostmaster: c.Hostmaster, TTL: c.TTL, MinTTL: c.MinTTL,
			Priority: c.Priority, UpstreamTTL: uint32(c.RCacheTTL), Key: c.signingKey,
		},
		Reply: ReplyOptions{RoundRobin: c.RoundRobin, MaxTTL: c.TTL, MaxUDPSize: uint16(c.MaxUDPSize)},
		Forward: ForwardOptions{
			Nameservers: slices.Clone(c.Nameservers), NoRec: c.NoRec, Rotate: c.NSRotate, Ndots: c.Ndots,
			Timeout: c.ReadTimeout, CacheSize: c.RCache, CacheTTL: time.Duration(c.RCacheTTL) * time.Second,
			UDPSize: uint16(c.MaxUDPSize), MaxInFlight: c.MaxForwards,
			FromResolvConf: c.fromResolvConf, LoopDetect: c.LoopDetect,
		},
		Serve: ServeOptions{
			DNSAddr: c.DNSAddr, Systemd: c.Systemd, MetricsAddr: c.MetricsAddr, MetricsPath: c.MetricsPath,
			TCPMaxConns: c.TCPMaxConns, UDPSockets: c.UDPSockets,
		},
		Etcd:           c.EtcdOptions(),
		AnswerCache:    c.AnswerCache,
		SignatureCache: c.SCache,
		StubZones:      c.StubZones,
		Autopath:       AutopathOptions{Enabled: c.Autopath, Search: hostSearch(c.AutopathSearch, c.Domain)},
	}
}
