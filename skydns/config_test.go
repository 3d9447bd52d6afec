package skydns

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/spf13/pflag"

	"github.com/skypod/skypod/internal/flagutil"
)

func parse(t *testing.T, env map[string]string, args ...string) (*Config, error) {
	t.Helper()
	cfg := NewConfig(func(k string) string { return env[k] })
	fs := pflag.NewFlagSet("skydns", pflag.ContinueOnError)
	cfg.AddFlags(fs)
	if err := flagutil.Parse(fs, args); err != nil {
		return nil, err
	}
	return cfg, cfg.Finish()
}

func TestLegacyManifestArgs(t *testing.T) {
	cfg, err := parse(t, nil, "-machines=http://127.0.0.1:4001", "-addr=0.0.0.0:53", "-ns-rotate=false", "-domain=cluster.local.")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Machines != "http://127.0.0.1:4001" || cfg.DNSAddr != "0.0.0.0:53" || cfg.NSRotate || cfg.Domain != "cluster.local." {
		t.Fatalf("%+v", cfg)
	}
	// The legacy defaults nobody in Kubernetes changed.
	if cfg.TTL != 3600 || cfg.MinTTL != 60 || cfg.Priority != 10 || cfg.Ndots != 2 || cfg.Hostmaster != "hostmaster.skydns.local." ||
		!cfg.RoundRobin || cfg.ReadTimeout != 2*time.Second || cfg.PathPrefix != "skydns" {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestConfigDefaultsAndEnv(t *testing.T) {
	cfg, err := parse(t, map[string]string{
		"SKYDNS_DOMAIN": "Example.ORG", "SKYDNS_ADDR": "127.0.0.2:1053", "ETCD_MACHINES": "http://a:1,http://b:2",
		"SKYDNS_NAMESERVERS": "127.0.0.1:53,127.0.0.2:53", "PROMETHEUS_PORT": "9999", "SKYDNS_PATH_PREFIX": "dns",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Domain != "example.org." || cfg.DNSAddr != "127.0.0.2:1053" || cfg.Machines != "http://a:1,http://b:2" ||
		!slices.Equal(cfg.Nameservers, []string{"127.0.0.1:53", "127.0.0.2:53"}) || cfg.MetricsAddr != ":9999" || cfg.PathPrefix != "dns" {
		t.Fatalf("%+v", cfg)
	}
	cfg, err = parse(t, map[string]string{"SKYDNS_DOMAIN": "env.org"}, "--domain=flag.org")
	if err != nil || cfg.Domain != "flag.org." {
		t.Fatalf("a flag must beat the environment: %v %v", cfg.Domain, err)
	}
	cfg, _ = parse(t, nil)
	if cfg.Machines != defaultMachines || cfg.Domain != defaultDomain || cfg.DNSAddr != defaultAddr {
		t.Fatalf("no flags: %+v", cfg)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-addr=localhost:53"}, "host must be an IP"},
		{[]string{"-addr=127.0.0.1:0"}, "port must be 1-65535"},
		{[]string{"-addr=127.0.0.1"}, "--addr"},
		{[]string{"-nameservers=8.8.8.8"}, "--nameservers"},
		{[]string{"-domain="}, "--domain"},
		{[]string{"-dnssec=Kexample"}, "--dnssec: open Kexample.key"},
		{[]string{"-path-prefix=a/b"}, "--path-prefix"},
		{[]string{"-rtimeout=soon"}, "invalid argument"},
		{[]string{"-no-such-flag"}, "unknown"},
		{[]string{"--answer-cache=-1"}, "must not be negative"},
		{[]string{"--max-udp-size=100"}, "--max-udp-size"},
		{[]string{"--max-udp-size=70000"}, "--max-udp-size"},
		{[]string{"--udp-sockets=0"}, "--udp-sockets: 0 must be 1-256"},
		{[]string{"--udp-sockets=-3"}, "--udp-sockets"},
		{[]string{"--udp-sockets=257"}, "--udp-sockets"},
		{[]string{"--udp-sockets=two"}, "invalid argument"},
	}
	for _, tc := range tests {
		_, err := parse(t, nil, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %v, want one line containing %q", tc.args, err, tc.want)
		}
	}
}

func TestEtcdConfigOverlay(t *testing.T) {
	cfg, err := parse(t, nil, "-domain=cluster.local.", "-ns-rotate=false")
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cfg.Load([]byte(`{"ttl":30,"min_ttl":5,"priority":20,"ndot":3,"nameservers":["127.0.0.1:5353"],"hostmaster":"ops@example.org"}`), noResolvConf)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Zone.TTL != 30 || opts.Zone.MinTTL != 5 || opts.Zone.Priority != 20 || opts.Forward.Ndots != 3 || opts.Zone.Hostmaster != "ops.example.org." ||
		!slices.Equal(opts.Forward.Nameservers, []string{"127.0.0.1:5353"}) || opts.Forward.Rotate || opts.Zone.Domain != "cluster.local." {
		t.Fatalf("%+v", opts)
	}
	if _, err := cfg.Load([]byte(`{"ttl":`), noResolvConf); err == nil {
		t.Fatal("invalid JSON must be an error")
	}
	// The flags' Config is the same after Load: the overlay went into a copy.
	if cfg.TTL != defaultTTL || len(cfg.Nameservers) != 0 {
		t.Fatalf("Load changed the Config: %+v", cfg)
	}
}

func noResolvConf(string) (*dns.ClientConfig, error) { return nil, os.ErrNotExist }

func TestLoadNameserversFromResolvConf(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(path, []byte("search x\nnameserver 127.0.0.53\nnameserver ::1\noptions ndots:5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _ := parse(t, nil, "--resolv-conf="+path)
	opts, err := cfg.Load(nil, readResolvConf)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(opts.Forward.Nameservers, []string{"127.0.0.53:53", "[::1]:53"}) {
		t.Fatalf("%v", opts.Forward.Nameservers)
	}
	cfg, _ = parse(t, nil, "--resolv-conf="+filepath.Join(dir, "missing"))
	if opts, err := cfg.Load(nil, readResolvConf); err != nil || len(opts.Forward.Nameservers) != 0 {
		t.Fatalf("a missing file means no nameservers: %v %v", opts.Forward.Nameservers, err)
	}
}
