package kube2sky

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func parse(t *testing.T, args ...string) (*Config, error) {
	t.Helper()
	cfg := NewConfig()
	fs := pflag.NewFlagSet("kube2sky", pflag.ContinueOnError)
	cfg.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cfg, cfg.Finish()
}

func TestLeaderElectFlagDefaults(t *testing.T) {
	cfg, err := parse(t)
	if err != nil {
		t.Fatal(err)
	}
	want := LeaderElection{
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		ResourceName: "kube2sky", ResourceNamespace: "kube-system",
	}
	if cfg.LeaderElect != want {
		t.Fatalf("defaults %+v, want %+v (off, kube-controller-manager's durations)", cfg.LeaderElect, want)
	}
}

func TestLeaderElectFlags(t *testing.T) {
	cfg, err := parse(t, "--leader-elect", "--leader-elect-lease-duration=4s", "--leader-elect-renew-deadline=3s",
		"--leader-elect-retry-period=1s", "--leader-elect-resource-name=dns", "--leader-elect-resource-namespace=infra")
	if err != nil {
		t.Fatal(err)
	}
	want := LeaderElection{Enabled: true, LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second,
		RetryPeriod: time.Second, ResourceName: "dns", ResourceNamespace: "infra"}
	if cfg.LeaderElect != want {
		t.Fatalf("parsed %+v, want %+v", cfg.LeaderElect, want)
	}
}

func TestLeaderElectFlagsRejected(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--leader-elect-lease-duration=10s"}, "--leader-elect-lease-duration"},
		{[]string{"--leader-elect-renew-deadline=2s"}, "--leader-elect-renew-deadline"},
		{[]string{"--leader-elect-retry-period=0s"}, "--leader-elect-retry-period"},
		{[]string{"--leader-elect-resource-name="}, "--leader-elect-resource-name"},
	} {
		if _, err := parse(t, tc.args...); err == nil || !strings.HasPrefix(err.Error(), tc.flag) {
			t.Errorf("%v: %v, want an error about %s", tc.args, err, tc.flag)
		}
	}
}
