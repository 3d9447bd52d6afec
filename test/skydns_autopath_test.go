//go:build integration

package test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/skypod/skypod/test/harness"
)

// A pod's lookups through glibc with a kubelet-style resolv.conf (search
// list and ndots:5), once against skydns with --autopath and once against
// one without: the same answers, in one query where the walk found a name.
// The "pod" is a mount namespace with its own /etc/resolv.conf; glibc sends
// from 127.0.0.1 to a skydns on port 53 of another loopback address, and a
// pod record of team-a names 127.0.0.1.
func TestAutopathThroughGlibc(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (port 53 and a mount namespace): run the integration tests as root, as CI does")
	}
	etcd := harness.StartEtcd(t)
	c := etcd.Client()
	etcd.Put(c, "/skydns/local/cluster/svc/team-a/web/x", `{"host":"10.2.0.1"}`)
	etcd.Put(c, "/skydns/local/cluster/svc/team-b/api/x", `{"host":"10.2.0.2"}`)
	etcd.Put(c, "/skydns/local/cluster/pod/team-a/127-0-0-1/h1", `{"host":"127.0.0.1"}`)
	upstream := startFakeUpstream(t)
	net3 := fmt.Sprintf("127.53.%d.", 1+rand.IntN(250)) // Port 53 of addresses no other test uses.
	with := startSkydns(t, etcd.URL, "-addr="+net3+"1:53", "-nameservers="+upstream, "--autopath", "--autopath-search=corp.example")
	without := startSkydns(t, etcd.URL, "-addr="+net3+"2:53", "-nameservers="+upstream)

	for _, tc := range []struct {
		name    string
		queries int    // What the walk costs with --autopath; without, the client's own walk.
		addr    string // In getent's output; "": not found.
	}{
		{"web", 1, "10.2.0.1 "},
		{"api.team-b", 1, "10.2.0.2 "},
		{"www.example.com", 1, "192.0.2.53 "},
		{"nothing.example.org", 5, ""},
	} {
		got, gotQueries := lookupInPod(t, with, tc.name)
		want, wantQueries := lookupInPod(t, without, tc.name)
		if got != want {
			t.Errorf("%s: with --autopath %q, without %q", tc.name, got, want)
		}
		if found := !strings.HasPrefix(got, "exit"); found != (tc.addr != "") || !strings.Contains(got, tc.addr) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.addr)
		}
		if gotQueries != tc.queries {
			t.Errorf("%s: %d queries with --autopath, want %d (%d without)", tc.name, gotQueries, tc.queries, wantQueries)
		}
		t.Logf("%s: %d queries with --autopath, %d without: %q", tc.name, gotQueries, wantQueries, got)
	}
	if v := with.metric(t, `skydns_autopath_total{result="hit"}`); v != "2" {
		t.Errorf("autopath hits %s, want 2", v)
	}

	// The same name from an address no pod record names: NXDOMAIN, as
	// without --autopath; from the pod's, the CNAME.
	const asked = "api.team-b.team-a.svc.cluster.local."
	for _, tc := range []struct {
		from  string
		rcode int
	}{{"127.0.0.3", dns.RcodeNameError}, {"127.0.0.1", dns.RcodeSuccess}, {"127.0.0.3", dns.RcodeNameError}} {
		client := &dns.Client{Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(tc.from)}}}
		m, _, err := client.Exchange(new(dns.Msg).SetQuestion(asked, dns.TypeA), with.Addr)
		if err != nil || m.Rcode != tc.rcode {
			t.Errorf("from %s: %v %v, want %s", tc.from, m, err, dns.RcodeToString[tc.rcode])
		}
	}
}

// lookupInPod runs getent ahostsv4 name in a mount namespace whose
// /etc/resolv.conf is a kubelet's for a pod of team-a pointed at s, and
// returns its output (or exit status) and the A queries s received.
func lookupInPod(t *testing.T, s *skydnsProc, name string) (string, int) {
	t.Helper()
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	resolv := t.TempDir() + "/resolv.conf"
	conf := "nameserver " + host + "\nsearch team-a.svc.cluster.local svc.cluster.local cluster.local corp.example\noptions ndots:5 attempts:1\n"
	if err := os.WriteFile(resolv, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	before := requestsA(t, s)
	out, err := exec.Command("unshare", "--mount", "sh", "-c",
		`mount --bind "$1" /etc/resolv.conf && exec getent ahostsv4 "$2"`, "sh", resolv, name).CombinedOutput()
	result := string(out)
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		result = fmt.Sprintf("exit %d %s", exit.ExitCode(), out)
	case err != nil:
		t.Fatal(err)
	}
	return result, requestsA(t, s) - before
}

// requestsA is the UDP A queries s has received.
func requestsA(t *testing.T, s *skydnsProc) int {
	t.Helper()
	v := s.metric(t, `skydns_dns_requests_total{proto="udp",type="A"}`)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("requests %q: %v", v, err)
	}
	return n
}
