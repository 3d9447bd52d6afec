//go:build integration

package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/skypod/skypod/kube2sky"
	"github.com/skypod/skypod/test/benchload"
	"github.com/skypod/skypod/test/harness"
)

// dnsPod is the legacy pod's three DNS processes against a test cluster.
type dnsPod struct {
	etcd        *harness.Etcd
	kube2sky    *harness.Process
	kube2skyBin string // The binary startKube2sky runs.
	skydns      *skydnsProc
	healthz     string
	args        []string
	// skydnsArgs are skydns's extra arguments, for a restart.
	skydnsArgs []string
}

// grantKube2sky applies manifests/base/kube2sky-rbac.yaml and binds its
// ClusterRole and its leader-election Role to the kube2sky test user, who
// has no other rights.
func grantKube2sky(t testing.TB, c *harness.Cluster) {
	t.Helper()
	ctx, user := context.Background(), []rbacv1.Subject{{Kind: "User", Name: harness.Kube2skyUser}}
	for _, obj := range applyManifest(t, c, "base/kube2sky-rbac.yaml") {
		var err error
		switch r := obj.(type) {
		case *rbacv1.ClusterRole:
			_, err = c.Admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "test-kube2sky-user"},
				RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: r.Name},
				Subjects:   user,
			}, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = c.Admin.RbacV1().RoleBindings(r.Namespace).Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "test-kube2sky-user", Namespace: r.Namespace},
				RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: r.Name},
				Subjects:   user,
			}, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// applyManifest creates every object of manifests/<file> in the cluster,
// as its administrator, and returns them as the server stored them.
func applyManifest(t testing.TB, c *harness.Cluster, file string) []runtime.Object {
	t.Helper()
	return applyFile(t, c, filepath.Join("..", "manifests", file))
}

// applyFile is applyManifest for the file at path.
func applyFile(t testing.TB, c *harness.Cluster, file string) []runtime.Object {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return applyYAML(t, c, file, raw)
}

// decodeYAML decodes the documents of raw, a multi-document YAML stream
// named file in messages, into typed objects.
func decodeYAML(t testing.TB, file string, raw []byte) []runtime.Object {
	t.Helper()
	var out []runtime.Object
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		if strings.TrimSpace(strings.TrimPrefix(doc, "---")) == "" {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out = append(out, obj)
	}
	return out
}

// applyYAML creates the objects of raw (named file in messages) in c and
// returns them as the apiserver stored them.
func applyYAML(t testing.TB, c *harness.Cluster, file string, raw []byte) []runtime.Object {
	t.Helper()
	ctx, opts := context.Background(), metav1.CreateOptions{}
	var out []runtime.Object
	for _, obj := range decodeYAML(t, file, raw) {
		var err error
		var created runtime.Object
		switch o := obj.(type) {
		case *v1.ServiceAccount:
			created, err = c.Admin.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, opts)
		case *v1.Service:
			created, err = c.Admin.CoreV1().Services(o.Namespace).Create(ctx, o, opts)
		case *v1.ReplicationController:
			created, err = c.Admin.CoreV1().ReplicationControllers(o.Namespace).Create(ctx, o, opts)
		case *v1.Secret:
			created, err = c.Admin.CoreV1().Secrets(o.Namespace).Create(ctx, o, opts)
		case *appsv1.Deployment:
			created, err = c.Admin.AppsV1().Deployments(o.Namespace).Create(ctx, o, opts)
		case *appsv1.StatefulSet:
			created, err = c.Admin.AppsV1().StatefulSets(o.Namespace).Create(ctx, o, opts)
		case *policyv1.PodDisruptionBudget:
			created, err = c.Admin.PolicyV1().PodDisruptionBudgets(o.Namespace).Create(ctx, o, opts)
		case *rbacv1.ClusterRole:
			created, err = c.Admin.RbacV1().ClusterRoles().Create(ctx, o, opts)
		case *rbacv1.ClusterRoleBinding:
			created, err = c.Admin.RbacV1().ClusterRoleBindings().Create(ctx, o, opts)
		case *rbacv1.Role:
			created, err = c.Admin.RbacV1().Roles(o.Namespace).Create(ctx, o, opts)
		case *rbacv1.RoleBinding:
			created, err = c.Admin.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, opts)
		default:
			t.Fatalf("%s: unexpected object %T", file, obj)
		}
		if err != nil {
			t.Fatalf("%s: create %T: %v", file, obj, err)
		}
		out = append(out, created)
	}
	return out
}

func startDNSPod(t testing.TB, c *harness.Cluster, extra ...string) *dnsPod {
	t.Helper()
	return startDNSPodOn(t, c, harness.StartEtcd(t), extra...)
}

// startDNSPodOn is startDNSPod against an etcd the test started.
func startDNSPodOn(t testing.TB, c *harness.Cluster, etcd *harness.Etcd, extra ...string) *dnsPod {
	t.Helper()
	return startDNSPodWith(t, c, etcd, harness.Binary(t, "kube2sky"), extra...)
}

// startDNSPodWith is startDNSPodOn with the kube2sky binary at kube2skyBin
// (a benchmark's older build, to compare).
func startDNSPodWith(t testing.TB, c *harness.Cluster, etcd *harness.Etcd, kube2skyBin string, extra ...string) *dnsPod {
	t.Helper()
	// Upstream is a fake on loopback, for ExternalName targets.
	p := &dnsPod{etcd: etcd, kube2skyBin: kube2skyBin, skydnsArgs: []string{"-nameservers=" + startFakeUpstream(t)}}
	p.skydns = startSkydns(t, etcd.URL, p.skydnsArgs...)
	port := harness.FreePort(t)
	p.healthz = fmt.Sprintf("http://127.0.0.1:%d", port)
	p.args = []string{"--domain=cluster.local", "--etcd-server=" + etcd.URL,
		"--kubecfg-file=" + c.Kubeconfig(t, harness.Kube2skyToken), fmt.Sprintf("--healthz-port=%d", port)}
	p.args = append(p.args, extra...)
	p.startKube2sky(t)
	return p
}

// kube2skyReadyTimeout bounds startKube2sky's wait for /readiness 200 (the
// first full sync); BenchmarkKube2sky raises it with its service count.
var kube2skyReadyTimeout = 30 * time.Second

func (p *dnsPod) startKube2sky(t testing.TB) {
	t.Helper()
	p.kube2sky = harness.Start(t, "kube2sky", p.kube2skyBin, p.args)
	harness.Eventually(t, kube2skyReadyTimeout, "kube2sky ready", func() error {
		if exited, err := p.kube2sky.Exited(); exited {
			t.Fatalf("kube2sky exited: %v", err)
		}
		code, body, err := harness.HTTPGet(p.healthz + "/readiness")
		if err != nil || code != 200 {
			return fmt.Errorf("/readiness %d %q %v", code, body, err)
		}
		return nil
	})
}

// expect polls dig over UDP and TCP until the answer lines' data (the part
// after the type) equal want, as a set.
func (p *dnsPod) expect(t *testing.T, status string, want []string, args ...string) {
	t.Helper()
	for _, transport := range []string{"+notcp", "+tcp"} {
		harness.Eventually(t, 10*time.Second, fmt.Sprintf("dig %v %s", args, transport), func() error {
			st, answers, err := harness.TryDig(t, p.skydns.Addr, append(args, transport)...)
			if err != nil {
				return err
			}
			got := rdata(answers)
			if st != status || !slices.Equal(got, sorted(want)) {
				return fmt.Errorf("%s %q, want %s %q", st, got, status, want)
			}
			return nil
		})
	}
}

// rdata keeps what follows "IN TYPE" in each dig answer line, sorted.
func rdata(lines []string) []string {
	out := []string{}
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) >= 5 {
			out = append(out, f[3]+" "+strings.Join(f[4:], " "))
		}
	}
	return sorted(out)
}

func sorted(s []string) []string {
	out := append([]string{}, s...)
	slices.Sort(out)
	if out == nil {
		out = []string{}
	}
	return out
}

func createNamespace(t testing.TB, admin kubernetes.Interface, ns string) {
	t.Helper()
	benchload.Namespace(t, admin, ns)
}

// must(call())(t) is call's result, or the test's end on its error.
func must[T any](obj T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return obj
	}
}

func TestKube2skyAgainstARealAPIServer(t *testing.T) {
	cluster := harness.StartCluster(t)
	grantKube2sky(t, cluster)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	pod := startDNSPod(t, cluster, "--metrics-addr="+metricsAddr)
	admin := cluster.Admin
	ctx := context.Background()
	ns := "dns-e2e"
	createNamespace(t, admin, ns)
	suffix := ns + ".svc.cluster.local."

	kubernetesSvc := must(admin.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{}))(t)
	t.Run("E1 kubernetes.default", func(t *testing.T) {
		pod.expect(t, "NOERROR", []string{"A " + kubernetesSvc.Spec.ClusterIP}, "kubernetes.default.svc.cluster.local", "A")
	})

	svc2 := must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "test-service-2"},
		Spec:       v1.ServiceSpec{Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}},
	}, metav1.CreateOptions{}))(t)
	headless := must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "dns-test-service"},
		Spec:       v1.ServiceSpec{ClusterIP: v1.ClusterIPNone, Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}},
	}, metav1.CreateOptions{}))(t)
	must(admin.CoreV1().Endpoints(ns).Create(ctx, &v1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: headless.Name},
		Subsets: []v1.EndpointSubset{{
			Addresses: []v1.EndpointAddress{{IP: "10.244.0.11", Hostname: "dns-querier-2"}, {IP: "10.244.0.12"}},
			Ports:     []v1.EndpointPort{{Name: "http", Port: 8080, Protocol: v1.ProtocolTCP}},
		}},
	}, metav1.CreateOptions{}))(t)

	t.Run("E4 services", func(t *testing.T) {
		ip := svc2.Spec.ClusterIP
		pod.expect(t, "NOERROR", []string{"A " + ip}, "test-service-2."+suffix, "A")
		pod.expect(t, "NOERROR", []string{"SRV 10 100 80 test-service-2." + suffix}, "_http._tcp.test-service-2."+suffix, "SRV")
		pod.expect(t, "NOERROR", []string{"A 10.244.0.11", "A 10.244.0.12"}, "dns-test-service."+suffix, "A")
		_, answers := harness.Dig(t, pod.skydns.Addr, "_http._tcp.dns-test-service."+suffix, "SRV")
		if got := rdata(answers); len(got) != 2 || !slices.Contains(got, "SRV 10 50 8080 dns-querier-2.dns-test-service."+suffix) {
			t.Errorf("headless SRV: %q", got)
		}
		pod.expect(t, "NOERROR", []string{"PTR test-service-2." + suffix}, "-x", ip)
	})
	t.Run("E6 E7 endpoint hostname", func(t *testing.T) {
		pod.expect(t, "NOERROR", []string{"A 10.244.0.11"}, "dns-querier-2.dns-test-service."+suffix, "A")
		pod.expect(t, "NOERROR", []string{"PTR dns-querier-2.dns-test-service." + suffix}, "-x", "10.244.0.11")
	})
	t.Run("S13 PTR of a headless endpoint without a hostname", func(t *testing.T) {
		// Its name is the one its SRV record targets and its A record sits at.
		name := endpointName(t, pod, "_http._tcp.dns-test-service."+suffix, "dns-querier-2.dns-test-service."+suffix)
		pod.expect(t, "NOERROR", []string{"A 10.244.0.12"}, name, "A")
		pod.expect(t, "NOERROR", []string{"PTR " + name}, "-x", "10.244.0.12")
	})
	t.Run("--metrics-addr serves /metrics alone; --healthz-port keeps it too", func(t *testing.T) {
		for _, url := range []string{"http://" + metricsAddr + "/metrics", pod.healthz + "/metrics"} {
			code, body, err := harness.HTTPGet(url)
			if code != 200 || !containsLine(body, "kube2sky_ready 1") || !strings.Contains(body, "kube2sky_owner_syncs_total ") {
				t.Errorf("%s: %d %v, no kube2sky_ready 1 or kube2sky_owner_syncs_total:\n%.500s", url, code, err, body)
			}
		}
		if code, _, err := harness.HTTPGet("http://" + metricsAddr + "/readiness"); code != 404 {
			t.Errorf("/readiness on --metrics-addr: %d %v, want 404", code, err)
		}
	})
	t.Run("E3 E5 partial names through the search list", func(t *testing.T) {
		conf := filepath.Join(t.TempDir(), "resolv.conf")
		host, port, _ := strings.Cut(pod.skydns.Addr, ":")
		content := fmt.Sprintf("nameserver %s\nsearch %s.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n", host, ns)
		if err := os.WriteFile(conf, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		kubernetes := []string{"kubernetes.default.svc.cluster.local.", "A " + kubernetesSvc.Spec.ClusterIP}
		headlessAs := []string{"dns-test-service." + suffix, "A 10.244.0.11", "A 10.244.0.12"}
		// Each short name, and the full name and records it must reach.
		for name, want := range map[string][]string{
			"kubernetes.default": kubernetes, "kubernetes.default.svc": kubernetes,
			"dns-test-service": headlessAs, "dns-test-service." + ns: headlessAs, "dns-test-service." + ns + ".svc": headlessAs,
			"test-service-2": {"test-service-2." + suffix, "A " + svc2.Spec.ClusterIP},
		} {
			for _, transport := range []string{"+notcp", "+tcp"} {
				out := digWithResolvConf(t, conf, "-p", port, "+search", "+noall", "+answer", transport, name, "A")
				if err := answersFor(out, want[0], want[1:]); err != nil {
					t.Errorf("dig +search %s %s: %v", name, transport, err)
				}
			}
		}
	})
	t.Run("E8 ExternalName updates and type change", func(t *testing.T) {
		svc := must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "dns-test-service-3"},
			Spec:       v1.ServiceSpec{Type: v1.ServiceTypeExternalName, ExternalName: "foo.example.com"},
		}, metav1.CreateOptions{}))(t)
		name := "dns-test-service-3." + suffix
		pod.expect(t, "NOERROR", []string{"CNAME foo.example.com."}, name, "CNAME")
		svc.Spec.ExternalName = "bar.example.com"
		svc = must(admin.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{}))(t)
		pod.expect(t, "NOERROR", []string{"CNAME bar.example.com."}, name, "CNAME")
		svc.Spec.Type = v1.ServiceTypeClusterIP
		svc.Spec.ExternalName = ""
		svc.Spec.Ports = []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}
		svc = must(admin.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{}))(t)
		pod.expect(t, "NOERROR", []string{"A " + svc.Spec.ClusterIP}, name, "A")
	})
	t.Run("S9 headless with no ready endpoints", func(t *testing.T) {
		must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "empty"},
			Spec:       v1.ServiceSpec{ClusterIP: v1.ClusterIPNone},
		}, metav1.CreateOptions{}))(t)
		pod.expect(t, "NXDOMAIN", nil, "empty."+suffix, "A")

		// The check above passes before kube2sky has seen the service at
		// all; here the name first answers, so its NXDOMAIN is kube2sky's
		// doing once the only endpoint stops being ready.
		must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "unready"},
			Spec:       v1.ServiceSpec{ClusterIP: v1.ClusterIPNone},
		}, metav1.CreateOptions{}))(t)
		address := []v1.EndpointAddress{{IP: "10.244.9.1"}}
		eps := must(admin.CoreV1().Endpoints(ns).Create(ctx, &v1.Endpoints{
			ObjectMeta: metav1.ObjectMeta{Name: "unready"},
			Subsets:    []v1.EndpointSubset{{Addresses: address, Ports: []v1.EndpointPort{{Port: 80, Protocol: v1.ProtocolTCP}}}},
		}, metav1.CreateOptions{}))(t)
		pod.expect(t, "NOERROR", []string{"A 10.244.9.1"}, "unready."+suffix, "A")
		eps.Subsets[0].Addresses, eps.Subsets[0].NotReadyAddresses = nil, address
		must(admin.CoreV1().Endpoints(ns).Update(ctx, eps, metav1.UpdateOptions{}))(t)
		pod.expect(t, "NXDOMAIN", nil, "unready."+suffix, "A")
	})
	t.Run("S13 PTR of an endpoint IP two headless services select", func(t *testing.T) {
		// One holds the PTR; deleting it hands the PTR to the other at once.
		for _, name := range []string{"shared-a", "shared-b"} {
			must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec:       v1.ServiceSpec{ClusterIP: v1.ClusterIPNone},
			}, metav1.CreateOptions{}))(t)
			must(admin.CoreV1().Endpoints(ns).Create(ctx, &v1.Endpoints{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Subsets: []v1.EndpointSubset{{Addresses: []v1.EndpointAddress{{IP: "10.244.8.1", Hostname: "pet"}},
					Ports: []v1.EndpointPort{{Port: 80, Protocol: v1.ProtocolTCP}}}},
			}, metav1.CreateOptions{}))(t)
			pod.expect(t, "NOERROR", []string{"A 10.244.8.1"}, "pet."+name+"."+suffix, "A")
		}
		var holder string
		harness.Eventually(t, 10*time.Second, "a PTR for 10.244.8.1", func() error {
			_, answers, err := harness.TryDig(t, pod.skydns.Addr, "-x", "10.244.8.1")
			if err != nil {
				return err
			}
			for _, name := range []string{"shared-a", "shared-b"} {
				if slices.Equal(rdata(answers), []string{"PTR pet." + name + "." + suffix}) {
					holder = name
					return nil
				}
			}
			return fmt.Errorf("PTR %q, want pet.shared-a or pet.shared-b", rdata(answers))
		})
		other := map[string]string{"shared-a": "shared-b", "shared-b": "shared-a"}[holder]
		if err := admin.CoreV1().Services(ns).Delete(ctx, holder, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		pod.expect(t, "NXDOMAIN", nil, "pet."+holder+"."+suffix, "A")
		pod.expect(t, "NOERROR", []string{"PTR pet." + other + "." + suffix}, "-x", "10.244.8.1")
	})
	t.Run("S13 PTR of a published not-ready endpoint", func(t *testing.T) {
		// Its PTR follows its A record: published, or neither.
		for _, publish := range []bool{true, false} {
			name, ip := fmt.Sprintf("warming-%t", publish), map[bool]string{true: "10.244.8.2", false: "10.244.8.3"}[publish]
			must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec:       v1.ServiceSpec{ClusterIP: v1.ClusterIPNone, PublishNotReadyAddresses: publish},
			}, metav1.CreateOptions{}))(t)
			must(admin.CoreV1().Endpoints(ns).Create(ctx, &v1.Endpoints{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Subsets: []v1.EndpointSubset{{
					Addresses:         []v1.EndpointAddress{{IP: "10.244.8.9", Hostname: "ready"}},
					NotReadyAddresses: []v1.EndpointAddress{{IP: ip, Hostname: "pet"}},
					Ports:             []v1.EndpointPort{{Port: 80, Protocol: v1.ProtocolTCP}}}},
			}, metav1.CreateOptions{}))(t)
			// The ready address answering first shows kube2sky has synced it.
			pod.expect(t, "NOERROR", []string{"A 10.244.8.9"}, "ready."+name+"."+suffix, "A")
			if publish {
				pod.expect(t, "NOERROR", []string{"A " + ip}, "pet."+name+"."+suffix, "A")
				pod.expect(t, "NOERROR", []string{"PTR pet." + name + "." + suffix}, "-x", ip)
			} else {
				// The ready address's records and the PTRs are one
				// transaction: what answers now is final.
				pod.expect(t, "NXDOMAIN", nil, "pet."+name+"."+suffix, "A")
				if _, answers, err := harness.TryDig(t, pod.skydns.Addr, "-x", ip); err != nil || len(answers) != 0 {
					t.Errorf("dig -x %s: %q %v, want no PTR for an unpublished not-ready address", ip, answers, err)
				}
			}
		}
	})
	t.Run("S1 dns-version", func(t *testing.T) {
		pod.expect(t, "NOERROR", []string{`TXT "1.1.0"`}, "dns-version.cluster.local", "TXT")
	})
	t.Run("S17 pod record", func(t *testing.T) {
		p := must(admin.CoreV1().Pods(ns).Create(ctx, &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web"},
			Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "none"}}},
		}, metav1.CreateOptions{}))(t)
		patch := []byte(`{"status":{"podIP":"10.244.3.4","podIPs":[{"ip":"10.244.3.4"}]}}`)
		must(admin.CoreV1().Pods(ns).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"))(t)
		pod.expect(t, "NOERROR", []string{"A 10.244.3.4"}, "10-244-3-4."+ns+".pod.cluster.local", "A")
		if err := admin.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
			t.Fatal(err)
		}
		pod.expect(t, "NXDOMAIN", nil, "10-244-3-4."+ns+".pod.cluster.local", "A")
	})
	t.Run("spec cases S3 S5 S7 S11 S14 S15 S16 and E11", func(t *testing.T) {
		dual := must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "dual"},
			Spec: v1.ServiceSpec{IPFamilyPolicy: ptrTo(v1.IPFamilyPolicyRequireDualStack),
				IPFamilies: []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol},
				Ports:      []v1.ServicePort{{Port: 80, Protocol: v1.ProtocolTCP}}},
		}, metav1.CreateOptions{}))(t)
		if len(dual.Spec.ClusterIPs) != 2 {
			t.Fatalf("dual-stack service got %v", dual.Spec.ClusterIPs)
		}
		v4, v6 := dual.Spec.ClusterIPs[0], dual.Spec.ClusterIPs[1]
		pod.expect(t, "NOERROR", []string{"A " + v4}, "dual."+suffix, "A")
		pod.expect(t, "NOERROR", []string{"AAAA " + v6}, "dual."+suffix, "AAAA")
		pod.expect(t, "NOERROR", []string{"PTR dual." + suffix}, "-x", v6)
		pod.expect(t, "NXDOMAIN", nil, "_http._tcp.dual."+suffix, "SRV") // S5: an unnamed port has no SRV.

		must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "hl6"},
			Spec: v1.ServiceSpec{ClusterIP: v1.ClusterIPNone, IPFamilies: []v1.IPFamily{v1.IPv6Protocol},
				Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}},
		}, metav1.CreateOptions{}))(t)
		must(admin.CoreV1().Endpoints(ns).Create(ctx, &v1.Endpoints{
			ObjectMeta: metav1.ObjectMeta{Name: "hl6"},
			Subsets: []v1.EndpointSubset{{
				Addresses: []v1.EndpointAddress{{IP: "fd00:244::1", Hostname: "my-pet"}, {IP: "fd00:244::2"}},
				Ports:     []v1.EndpointPort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}},
			}},
		}, metav1.CreateOptions{}))(t)
		pod.expect(t, "NOERROR", []string{"AAAA fd00:244::1", "AAAA fd00:244::2"}, "hl6."+suffix, "AAAA")
		pod.expect(t, "NOERROR", []string{"AAAA fd00:244::1"}, "my-pet.hl6."+suffix, "AAAA")
		pod.expect(t, "NOERROR", []string{"PTR my-pet.hl6." + suffix}, "-x", "fd00:244::1") // S13 over ip6.arpa.
		hashed := endpointName(t, pod, "_http._tcp.hl6."+suffix, "my-pet.hl6."+suffix)
		pod.expect(t, "NOERROR", []string{"AAAA fd00:244::2"}, hashed, "AAAA")
		pod.expect(t, "NOERROR", []string{"PTR " + hashed}, "-x", "fd00:244::2")

		must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "ext"},
			Spec:       v1.ServiceSpec{Type: v1.ServiceTypeExternalName, ExternalName: "www.example.com"},
		}, metav1.CreateOptions{}))(t)
		pod.expect(t, "NOERROR", []string{"CNAME www.example.com.", "A 192.0.2.53"}, "ext."+suffix, "A")
		pod.expect(t, "NOERROR", []string{"CNAME www.example.com.", "AAAA 2001:db8::53"}, "ext."+suffix, "AAAA")

		pod.expect(t, "NOERROR", []string{"A " + svc2.Spec.ClusterIP}, "TeSt-SeRvIcE-2."+strings.ToUpper(ns)+".SvC.cluster.LOCAL.", "A")

		digit := must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "1kubernetes"},
			Spec:       v1.ServiceSpec{Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}},
		}, metav1.CreateOptions{}))(t)
		pod.expect(t, "NOERROR", []string{"A " + digit.Spec.ClusterIP}, "1kubernetes."+suffix, "A")
	})
	t.Run("legacy cases K2 K2b K8 through the API", func(t *testing.T) {
		must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "k2"},
			Spec:       v1.ServiceSpec{ClusterIP: v1.ClusterIPNone, Ports: []v1.ServicePort{{Port: 80, Protocol: v1.ProtocolTCP}}},
		}, metav1.CreateOptions{}))(t)
		tcp := v1.ProtocolTCP
		first := v1.EndpointSubset{
			Addresses: []v1.EndpointAddress{{IP: "10.0.0.1"}, {IP: "10.0.0.2"}},
			Ports:     []v1.EndpointPort{{Name: "http1", Port: 80, Protocol: tcp}, {Name: "http2", Port: 81, Protocol: tcp}},
		}
		second := v1.EndpointSubset{
			Addresses: []v1.EndpointAddress{{IP: "10.0.0.3"}, {IP: "10.0.0.4"}},
			Ports:     []v1.EndpointPort{{Name: "https", Port: 443, Protocol: tcp}},
		}
		eps := must(admin.CoreV1().Endpoints(ns).Create(ctx, &v1.Endpoints{
			ObjectMeta: metav1.ObjectMeta{Name: "k2"}, Subsets: []v1.EndpointSubset{first, second},
		}, metav1.CreateOptions{}))(t)
		pod.expect(t, "NOERROR", []string{"A 10.0.0.1", "A 10.0.0.2", "A 10.0.0.3", "A 10.0.0.4"}, "k2."+suffix, "A")
		for port, want := range map[string]string{"http1": "80", "http2": "81", "https": "443"} {
			_, answers := harness.Dig(t, pod.skydns.Addr, "_"+port+"._tcp.k2."+suffix, "SRV")
			got := rdata(answers)
			if len(got) != 2 || !strings.HasPrefix(got[0], "SRV 10 50 "+want+" ") || !strings.HasPrefix(got[1], "SRV 10 50 "+want+" ") {
				t.Errorf("K2 %s: %q", port, got)
			}
		}
		eps.Subsets = []v1.EndpointSubset{first}
		must(admin.CoreV1().Endpoints(ns).Update(ctx, eps, metav1.UpdateOptions{}))(t)
		pod.expect(t, "NOERROR", []string{"A 10.0.0.1", "A 10.0.0.2"}, "k2."+suffix, "A")
		pod.expect(t, "NXDOMAIN", nil, "_https._tcp.k2."+suffix, "SRV")

		k8 := must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "k8"},
			Spec:       v1.ServiceSpec{Ports: []v1.ServicePort{{Name: "http1", Port: 80, Protocol: tcp}}},
		}, metav1.CreateOptions{}))(t)
		pod.expect(t, "NOERROR", []string{"SRV 10 100 80 k8." + suffix}, "_http1._tcp.k8."+suffix, "SRV")
		k8.Spec.Ports[0].Name = "http2"
		must(admin.CoreV1().Services(ns).Update(ctx, k8, metav1.UpdateOptions{}))(t)
		pod.expect(t, "NOERROR", []string{"SRV 10 100 80 k8." + suffix}, "_http2._tcp.k8."+suffix, "SRV")
		pod.expect(t, "NXDOMAIN", nil, "_http1._tcp.k8."+suffix, "SRV")
	})
	t.Run("legacy cases K1 K3 K4 K7 K9 through the API", func(t *testing.T) {
		tcp := v1.ProtocolTCP
		must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "k4"},
			Spec:       v1.ServiceSpec{ClusterIP: v1.ClusterIPNone, Ports: []v1.ServicePort{{Port: 80, Protocol: tcp}}},
		}, metav1.CreateOptions{}))(t)
		pod.expect(t, "NXDOMAIN", nil, "k4."+suffix, "A") // K4: no endpoints yet.
		one := v1.EndpointSubset{Addresses: []v1.EndpointAddress{{IP: "10.1.0.1"}, {IP: "10.1.0.2"}}, Ports: []v1.EndpointPort{{Port: 80, Protocol: tcp}}}
		two := v1.EndpointSubset{Addresses: []v1.EndpointAddress{{IP: "10.1.0.3"}, {IP: "10.1.0.4"}}, Ports: []v1.EndpointPort{{Port: 8080, Protocol: tcp}}}
		eps := must(admin.CoreV1().Endpoints(ns).Create(ctx, &v1.Endpoints{
			ObjectMeta: metav1.ObjectMeta{Name: "k4"}, Subsets: []v1.EndpointSubset{one},
		}, metav1.CreateOptions{}))(t)
		pod.expect(t, "NOERROR", []string{"A 10.1.0.1", "A 10.1.0.2"}, "k4."+suffix, "A") // K3, first subset.
		eps.Subsets = append(eps.Subsets, two)
		must(admin.CoreV1().Endpoints(ns).Update(ctx, eps, metav1.UpdateOptions{}))(t)
		pod.expect(t, "NOERROR", []string{"A 10.1.0.1", "A 10.1.0.2", "A 10.1.0.3", "A 10.1.0.4"}, "k4."+suffix, "A") // K1, K3.
		if err := admin.CoreV1().Services(ns).Delete(ctx, "k4", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		pod.expect(t, "NXDOMAIN", nil, "k4."+suffix, "A") // K1: removeService leaves nothing.

		k7 := must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "k7"},
			Spec:       v1.ServiceSpec{Ports: []v1.ServicePort{{Port: 80, Protocol: tcp}}},
		}, metav1.CreateOptions{}))(t)
		pod.expect(t, "NOERROR", []string{"A " + k7.Spec.ClusterIP}, "k7."+suffix, "A")
		if err := admin.CoreV1().Services(ns).Delete(ctx, "k7", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		pod.expect(t, "NXDOMAIN", nil, "k7."+suffix, "A")

		p := must(admin.CoreV1().Pods(ns).Create(ctx, &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "k9"},
			Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "none"}}},
		}, metav1.CreateOptions{}))(t)
		pod.expect(t, "NXDOMAIN", nil, "1-2-3-4."+ns+".pod.cluster.local", "A") // K9: no IP, no record.
		for _, ip := range []string{"1.2.3.4", "4.3.2.1"} {
			patch := []byte(`{"status":{"podIP":"` + ip + `","podIPs":[{"ip":"` + ip + `"}]}}`)
			must(admin.CoreV1().Pods(ns).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"))(t)
			pod.expect(t, "NOERROR", []string{"A " + ip}, strings.ReplaceAll(ip, ".", "-")+"."+ns+".pod.cluster.local", "A")
		}
		pod.expect(t, "NXDOMAIN", nil, "1-2-3-4."+ns+".pod.cluster.local", "A") // K9d: the old IP's record is gone.
	})
	t.Run("records skydns cannot serve as meant are skipped and counted", func(t *testing.T) {
		skippedRecordsThroughTheAPI(t, pod, admin, ns)
	})
	t.Run("restart after services were deleted and recreated", func(t *testing.T) {
		pod.kube2sky.Kill()
		old := svc2.Spec.ClusterIP
		if err := admin.CoreV1().Services(ns).Delete(ctx, svc2.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := admin.CoreV1().Services(ns).Delete(ctx, "dns-test-service", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		re := must(admin.CoreV1().Services(ns).Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "test-service-2"},
			Spec:       v1.ServiceSpec{Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}},
		}, metav1.CreateOptions{}))(t)
		if re.Spec.ClusterIP == old {
			t.Fatalf("the recreated service got the same IP %s; the test needs a new one", old)
		}
		pod.startKube2sky(t)
		pod.expect(t, "NOERROR", []string{"A " + re.Spec.ClusterIP}, "test-service-2."+suffix, "A")
		pod.expect(t, "NXDOMAIN", nil, "dns-test-service."+suffix, "A")
		pod.expect(t, "NOERROR", []string{"PTR test-service-2." + suffix}, "-x", re.Spec.ClusterIP)
		if status, answers := harness.Dig(t, pod.skydns.Addr, "-x", old); status != "NXDOMAIN" || len(answers) != 0 {
			t.Errorf("stale PTR for the old ClusterIP: %s %q, want NXDOMAIN", status, answers)
		}
		if _, answers := harness.Dig(t, pod.skydns.Addr, "-x", "10.244.0.12"); len(answers) != 0 {
			t.Errorf("stale PTR for an endpoint of the deleted headless service: %q", answers)
		}
		// Here: the restarted process belongs to this subtest, which kills it at its end.
		if err := pod.kube2sky.Stop(20 * time.Second); err != nil {
			t.Errorf("SIGTERM: want exit 0 once every goroutine has stopped: %v\n%s", err, pod.kube2sky.Log())
		}
	})
}

// skippedRecordsThroughTheAPI: objects the API server accepts whose
// records skydns could not serve as kube2sky means them (an externalName
// that parses as an IP, or has a label over 63 bytes; a 63-byte port name,
// 64 bytes with its "_") leave no key in etcd and are counted by reason,
// while the services beside them answer.
func skippedRecordsThroughTheAPI(t *testing.T, pod *dnsPod, admin kubernetes.Interface, ns string) {
	ctx, suffix := context.Background(), ns+".svc.cluster.local."
	create := func(name string, spec v1.ServiceSpec) (*v1.Service, error) {
		return admin.CoreV1().Services(ns).Create(ctx, &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{})
	}
	external := func(target string) v1.ServiceSpec {
		return v1.ServiceSpec{Type: v1.ServiceTypeExternalName, ExternalName: target}
	}
	http := v1.ServicePort{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}
	long := v1.ServicePort{Name: strings.Repeat("p", 63), Port: 81, Protocol: v1.ProtocolTCP}
	must(create("metadata", external("169.254.169.254")))(t)
	must(create("long-label", external(strings.Repeat("a", 64)+".example.com")))(t)
	must(create("ext-ok", external("www.example.com")))(t)
	plain := must(create("plain", v1.ServiceSpec{Ports: []v1.ServicePort{http, long}}))(t)
	if _, err := create("v6", external("2001:db8::1")); err == nil {
		t.Errorf("the API server accepted an IPv6 externalName; kube2sky skips it, but no test shows that through the API")
	}

	for reason, want := range map[string]string{"externalname_ip": "1", "invalid_value": "1", "invalid_label": "1"} {
		harness.Eventually(t, 10*time.Second, "kube2sky_skipped_records_total "+reason, func() error {
			if got := scrape(t, pod.healthz+"/metrics", `kube2sky_skipped_records_total{reason="`+reason+`"}`); got != want {
				return fmt.Errorf("%q, want %s", got, want)
			}
			return nil
		})
	}
	pod.expect(t, "NOERROR", []string{"CNAME www.example.com."}, "ext-ok."+suffix, "CNAME")
	pod.expect(t, "NOERROR", []string{"A " + plain.Spec.ClusterIP}, "plain."+suffix, "A")
	pod.expect(t, "NOERROR", []string{"SRV 10 100 80 plain." + suffix}, "_http._tcp.plain."+suffix, "SRV")
	for _, name := range []string{"metadata", "long-label"} {
		pod.expect(t, "NXDOMAIN", nil, name+"."+suffix, "A")
		m, err := harness.Exchange(pod.skydns.Addr, "udp", name+"."+suffix, dns.TypeA)
		if err := harness.WantRcode(m, err, dns.RcodeNameError); err != nil || len(m.Answer) != 0 {
			t.Errorf("miekg/dns A %s: %v %v", name, err, m)
		}
	}

	keys := etcdKeys(t, pod, "/skydns/local/cluster/svc/"+ns+"/")
	for _, k := range keys {
		if strings.Contains(k, "/metadata") || strings.Contains(k, "/long-label") || strings.Contains(k, long.Name) {
			t.Errorf("a skipped record's key is in etcd: %s", k)
		}
	}
	for _, k := range []string{"/ext-ok", "/plain/_tcp/_http/"} {
		if !slices.ContainsFunc(keys, func(key string) bool { return strings.Contains(key, k) }) {
			t.Errorf("no key with %s in etcd: %q", k, keys)
		}
	}
	if n := strings.Count(pod.kube2sky.Log(), "record=metadata."+suffix); n != 1 {
		t.Errorf("the IP externalName logged %d times, want once", n)
	}
}

// etcdKeys are the keys under prefix in the DNS pod's etcd.
func etcdKeys(t *testing.T, pod *dnsPod, prefix string) []string {
	t.Helper()
	resp := must(pod.etcd.Client().Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly()))(t)
	var keys []string
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	return keys
}

// endpointName is the one target of the SRV records at srv other than
// named, polled until both targets are there.
func endpointName(t *testing.T, pod *dnsPod, srv, named string) string {
	t.Helper()
	var other string
	harness.Eventually(t, 10*time.Second, "two SRV targets at "+srv, func() error {
		_, answers, err := harness.TryDig(t, pod.skydns.Addr, srv, "SRV")
		if err != nil {
			return err
		}
		var targets []string
		for _, rr := range rdata(answers) {
			if f := strings.Fields(rr); len(f) == 5 && f[4] != named {
				targets = append(targets, f[4])
			}
		}
		if len(targets) != 1 || !strings.HasSuffix(targets[0], "."+strings.SplitN(named, ".", 2)[1]) {
			return fmt.Errorf("targets other than %s: %q", named, targets)
		}
		other = targets[0]
		return nil
	})
	return other
}

// digWithResolvConf runs dig with conf bind-mounted over /etc/resolv.conf in
// a private mount namespace, so +search uses the test's search list.
func digWithResolvConf(t *testing.T, conf string, args ...string) string {
	t.Helper()
	harness.Tool(t, "dig")
	script := `mount --bind "$0" /etc/resolv.conf && exec dig "$@"`
	cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c", script, conf}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dig in a mount namespace: %v\n%s", err, out)
	}
	return string(out)
}

// answersFor checks dig's +answer output: every record owned by owner, and
// their data, as a set, equal to want.
func answersFor(out, owner string, want []string) error {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" && !strings.HasPrefix(l, ";") {
			lines = append(lines, l)
		}
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, owner+" ") {
			return fmt.Errorf("answer %q, want records of %s", l, owner)
		}
	}
	if got := rdata(lines); !slices.Equal(got, sorted(want)) {
		return fmt.Errorf("answers %q, want %q", got, want)
	}
	return nil
}

func containsLine(body, line string) bool {
	return slices.Contains(strings.Split(body, "\n"), line)
}

func ptrTo[T any](v T) *T { return &v }

// The Store's revisions are what make a resync safe (kube2sky/README.md):
// against a real etcd, Apply reports a revision at which all of a change is
// visible, even one that takes several transactions, and a list reports
// the revision it is a snapshot of, which orders it against later commits.
func TestKube2skyEtcdStoreRevisions(t *testing.T) {
	etcd := harness.StartEtcd(t)
	client := etcd.Client()
	store := kube2sky.NewEtcdStore(client, 10*time.Second)
	ctx := context.Background()
	const n = 1100 // More than one transaction's 128 operations, and one list page's 1,000 keys.
	puts := kube2sky.Records{}
	for i := range n {
		puts[fmt.Sprintf("/skydns/a/%04d", i)] = fmt.Sprint(i)
	}
	applied := must(store.Apply(ctx, puts, nil))(t)
	if resp := must(client.Get(ctx, "/skydns/a/", clientv3.WithPrefix(), clientv3.WithRev(applied), clientv3.WithCountOnly()))(t); resp.Count != n {
		t.Fatalf("at the revision Apply returned, %d of %d keys are visible", resp.Count, n)
	}
	list := func() (kube2sky.Records, int64, error) {
		out := kube2sky.Records{}
		rev, err := store.List(ctx, func(k, v string) { out[k] = v }, "/skydns/a/", "/skydns/b/")
		return out, rev, err
	}

	listed, listRev, err := list()
	if err != nil || listRev != applied || len(listed) != n || listed["/skydns/a/1099"] != "1099" {
		t.Fatalf("list: %d keys at revision %d (%v), want %d at %d", len(listed), listRev, err, n, applied)
	}
	later := must(store.Apply(ctx, kube2sky.Records{"/skydns/b/x": "1"}, []string{"/skydns/a/0000"}))(t)
	if later <= listRev {
		t.Fatalf("a commit after the list is at revision %d, not after the list's %d", later, listRev)
	}
	listed, listRev, err = list()
	if err != nil || listRev != later || listed["/skydns/b/x"] != "1" || listed["/skydns/a/0000"] != "" || len(listed) != n {
		t.Fatalf("list after the commit: %d keys at revision %d (%v), want the commit's %d", len(listed), listRev, err, later)
	}
}
