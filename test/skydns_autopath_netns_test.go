//go:build integration

package test

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skypod/skypod/test/harness"
)

// autopathRuns is how many times each lookup runs per client and skydns:
// the wall times reported are their median.
const autopathRuns = 50

// A pod's lookups from a network namespace of its own, as a kubelet makes
// them: a veth pair to the host with a pod-like address at each end, a
// kubelet's resolv.conf, glibc (getent ahostsv4) and busybox nslookup as
// the clients, and a pod record in etcd naming the namespace's address.
// Two skydns listen on port 53 of two host-end addresses, one with
// --autopath and one without; each lookup runs autopathRuns times against
// each, in the same run. Both give the same answers; the queries skydns
// received per lookup and the median wall time of one lookup (the client
// process, started with ip netns exec) are logged as AUTOPATH-REPORT lines,
// the figures of docs/benchmarks-autopath.md.
func TestAutopathInPodNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (a network namespace, a veth pair, port 53): run the integration tests as root, as CI does")
	}
	busybox := harness.Tool(t, "busybox")
	pod := newPodNetns(t)

	etcd := harness.StartEtcd(t)
	c := etcd.Client()
	etcd.Put(c, "/skydns/local/cluster/svc/team-a/web/x", `{"host":"10.2.0.1"}`)
	etcd.Put(c, "/skydns/local/cluster/svc/team-b/api/x", `{"host":"10.2.0.2"}`)
	etcd.Put(c, "/skydns/local/cluster/pod/team-a/"+strings.ReplaceAll(pod.PodIP, ".", "-")+"/h1",
		`{"host":"`+pod.PodIP+`"}`)
	upstream := startFakeUpstream(t)
	sh := pod.shell(t, busybox, "sh")
	with := startSkydns(t, etcd.URL, "-addr="+pod.HostIPs[0]+":53", "-nameservers="+upstream,
		"--autopath", "--autopath-search=corp.example")
	without := startSkydns(t, etcd.URL, "-addr="+pod.HostIPs[1]+":53", "-nameservers="+upstream)

	clients := []struct {
		name string
		argv func(lookup string) []string
		// Queries per lookup, with and without --autopath, in the order of
		// lookups below.
		with, without []int
	}{
		// glibc walks the search list in order, stopping at the first
		// name found, with the name as asked last (ndots:5).
		{"getent", func(n string) []string { return []string{"getent", "ahostsv4", n} },
			[]int{1, 1, 1, 5}, []int{1, 2, 5, 5}},
		// busybox asks for A and AAAA, a dotless name under every search
		// domain at once and a dotted one only as asked: autopath, which
		// answers a walk, has nothing to shorten.
		{"busybox-nslookup", func(n string) []string { return []string{busybox, "nslookup", n} },
			[]int{8, 2, 2, 2}, []int{8, 2, 2, 2}},
	}
	onOff := [2]string{"on", "off"}
	lookups := []string{"web", "api.team-b", "www.example.com", "nothing.example.org"}
	for _, client := range clients {
		for i, lookup := range lookups {
			// The two skydns in turn, so that the machine's load weighs on
			// both alike.
			var answers [2]string
			var times [2][]time.Duration
			queries := [2]map[int]int{{}, {}}
			for range autopathRuns {
				for j, s := range []*skydnsProc{with, without} {
					pod.nameserver(t, s)
					before := requestsAll(t, s)
					out, took := sh.run(t, client.argv(lookup)...)
					queries[j][requestsAll(t, s)-before]++
					times[j] = append(times[j], took)
					out = canonical(strings.ReplaceAll(out, pod.HostIPs[j], "<nameserver>"))
					if answers[j] == "" {
						answers[j] = out
					} else if out != answers[j] {
						t.Errorf("%s %s autopath=%s: %q, then %q", client.name, lookup, onOff[j], answers[j], out)
					}
				}
			}
			for j, want := range []int{client.with[i], client.without[i]} {
				if len(queries[j]) != 1 || queries[j][want] != autopathRuns {
					t.Errorf("%s %s autopath=%s: queries per lookup (queries: lookups) %v, want %d each time",
						client.name, lookup, onOff[j], queries[j], want)
				}
				slices.Sort(times[j])
				ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
				n := len(times[j])
				t.Logf("AUTOPATH-REPORT client=%s lookup=%s autopath=%s queries=%d p50_ms=%.2f min_ms=%.2f max_ms=%.2f",
					client.name, lookup, onOff[j], want, (ms(times[j][n/2])+ms(times[j][(n-1)/2]))/2,
					ms(times[j][0]), ms(times[j][n-1]))
			}
			if answers[0] != answers[1] {
				t.Errorf("%s %s: with --autopath %q, without %q", client.name, lookup, answers[0], answers[1])
			}
			t.Logf("%s %s: %q", client.name, lookup, answers[0])
		}
	}
	if v := with.metric(t, `skydns_autopath_total{result="hit"}`); v == "" || v == "0" {
		t.Errorf("autopath hits %q, want some", v)
	}
}

// podNetns is a network namespace joined to the host by a veth pair: PodIP
// inside, HostIPs on the host end, all in one /29 of 10.244.0.0/16.
type podNetns struct {
	Name    string
	PodIP   string
	HostIPs [2]string
}

// newPodNetns makes the namespace and its veth pair under names of its
// own, so that runs in parallel do not meet; cleanup deletes both and the
// namespace's /etc/netns directory, whatever happened.
func newPodNetns(t *testing.T) *podNetns {
	t.Helper()
	ip := harness.Tool(t, "ip")
	id := fmt.Sprintf("%06x", rand.IntN(1<<24))
	p := &podNetns{Name: "skypod-ap-" + id}
	hostVeth, podVeth := "spa"+id+"h", "spa"+id+"p" // At most 15 bytes.
	var base net.IP
	for range 20 {
		base = net.IPv4(10, 244, byte(rand.IntN(256)), byte(8*rand.IntN(32))).To4()
		if !hostHasAddrIn(t, &net.IPNet{IP: base, Mask: net.CIDRMask(29, 32)}) {
			break
		}
		base = nil
	}
	if base == nil {
		t.Fatal("no free /29 in 10.244.0.0/16 for the pod namespace")
	}
	addr := func(n byte) string { return net.IPv4(base[0], base[1], base[2], base[3]+n).String() }
	p.PodIP, p.HostIPs = addr(2), [2]string{addr(1), addr(3)}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		// Deleting the namespace deletes its veth end and so the pair; the
		// host end is deleted too in case the pair never reached it.
		for _, args := range [][]string{{"netns", "del", p.Name}, {"link", "del", hostVeth}} {
			if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil &&
				!strings.Contains(string(out), "No such file") && !strings.Contains(string(out), "Cannot find device") {
				t.Errorf("cleanup: ip %s: %v %s", strings.Join(args, " "), err, out)
			}
		}
		if err := os.RemoveAll(p.etc()); err != nil {
			t.Error(err)
		}
	})
	run("netns", "add", p.Name)
	run("link", "add", hostVeth, "type", "veth", "peer", "name", podVeth, "netns", p.Name)
	for _, a := range p.HostIPs {
		run("addr", "add", a+"/29", "dev", hostVeth)
	}
	run("link", "set", hostVeth, "up")
	run("-n", p.Name, "addr", "add", p.PodIP+"/29", "dev", podVeth)
	run("-n", p.Name, "link", "set", podVeth, "up")
	run("-n", p.Name, "link", "set", "lo", "up")
	// The file must be there for ip netns exec to bind-mount it: nameserver
	// rewrites it in place.
	if err := os.MkdirAll(p.etc(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.etc()+"/resolv.conf", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// etc is the namespace's directory under /etc/netns, whose files ip netns
// exec bind-mounts over /etc's.
func (p *podNetns) etc() string { return "/etc/netns/" + p.Name }

// hostHasAddrIn says whether an address of this host is in n.
func hostHasAddrIn(t *testing.T, n *net.IPNet) bool {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && (n.Contains(ipn.IP) || ipn.Contains(n.IP)) {
			return true
		}
	}
	return false
}

// nameserver writes the namespace's resolv.conf, a kubelet's for a pod of
// team-a, naming s; ip netns exec bind-mounts it on /etc/resolv.conf.
func (p *podNetns) nameserver(t *testing.T, s *skydnsProc) {
	t.Helper()
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	conf := "nameserver " + host + "\nsearch team-a.svc.cluster.local svc.cluster.local cluster.local corp.example\noptions ndots:5\n"
	if err := os.WriteFile(p.etc()+"/resolv.conf", []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// podShell is a shell in the namespace, started once with ip netns exec
// (which bind-mounts the namespace's resolv.conf), that runs one command at
// a time: the wall time of a lookup is its client's, not ip netns exec's.
type podShell struct {
	in  io.Writer
	out *bufio.Reader
}

func (p *podNetns) shell(t *testing.T, argv ...string) *podShell {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.Name}, argv...)...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = in.Close() // The shell exits at the end of its input.
		if err := cmd.Wait(); err != nil {
			t.Errorf("shell in %s: %v", p.Name, err)
		}
	})
	return &podShell{in: in, out: bufio.NewReader(out)}
}

// run runs argv and returns its output (stdout and stderr, prefixed with
// its exit status if not 0) and its wall time.
func (s *podShell) run(t *testing.T, argv ...string) (string, time.Duration) {
	t.Helper()
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	const end = "<<end-of-command "
	start := time.Now()
	if _, err := fmt.Fprintf(s.in, "%s 2>&1; printf '\\n%s%%d\\n' $?\n", strings.Join(quoted, " "), end); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for {
		line, err := s.out.ReadString('\n')
		if err != nil {
			t.Fatalf("shell: %v after %q", err, out.String())
		}
		if status, ok := strings.CutPrefix(line, end); ok {
			took := time.Since(start)
			result := strings.TrimSuffix(out.String(), "\n")
			if status = strings.TrimSpace(status); status != "0" {
				result = "exit " + status + " " + result
			}
			return result, took
		}
		out.WriteString(line)
	}
}

// canonical is out with its paragraphs sorted: busybox prints its answers
// in the order they came, its queries going out at once.
func canonical(out string) string {
	var paras []string
	for _, p := range strings.Split(out, "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			paras = append(paras, p)
		}
	}
	slices.Sort(paras)
	return strings.Join(paras, "\n\n")
}

// requestsAll is the queries s has received, of every type and protocol.
func requestsAll(t *testing.T, s *skydnsProc) int {
	t.Helper()
	_, body, err := harness.HTTPGet(s.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "skydns_dns_requests_total{") {
			continue
		}
		var n int
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &n); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		total += n
	}
	return total
}
