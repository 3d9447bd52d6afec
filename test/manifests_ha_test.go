//go:build integration

package test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/url"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	authzv1 "k8s.io/api/authorization/v1"
	v1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skypod/skypod/healthz"
	"github.com/skypod/skypod/internal/flagutil"
	"github.com/skypod/skypod/kube2sky"
	"github.com/skypod/skypod/skydns"
	"github.com/skypod/skypod/test/harness"
)

// haManifests is the HA shape of manifests/ha as the apiserver stored it.
type haManifests struct {
	objs     []runtime.Object
	etcd     *appsv1.StatefulSet
	skydns   *appsv1.Deployment
	kube2sky *appsv1.Deployment
	secrets  map[string]*v1.Secret
}

// haFiles are the HA shape's own files in manifests/, beside its overlay's
// kustomization.yaml and settings.yaml.
var haFiles = []string{"ha/etcd.yaml", "ha/skydns.yaml", "ha/kube2sky.yaml"}

// applyHASecrets creates the Secrets make-certs.sh makes, in a new
// directory, and returns them as the apiserver stored them.
func applyHASecrets(t *testing.T, cluster *harness.Cluster) []runtime.Object {
	t.Helper()
	certs := t.TempDir()
	if out, err := exec.CommandContext(t.Context(), "../manifests/ha/make-certs.sh", certs).CombinedOutput(); err != nil {
		t.Fatalf("make-certs.sh: %v\n%s", err, out)
	}
	return applyFile(t, cluster, filepath.Join(certs, "secrets.yaml"))
}

// newHAManifests finds the HA shape's parts among objs.
func newHAManifests(t *testing.T, objs []runtime.Object) *haManifests {
	t.Helper()
	ha := &haManifests{objs: objs, secrets: map[string]*v1.Secret{}}
	for _, o := range objs {
		if s, ok := o.(*v1.Secret); ok {
			ha.secrets[s.Name] = s
		}
	}
	ha.etcd = object[*appsv1.StatefulSet](t, objs, "skydns-etcd")
	ha.skydns = object[*appsv1.Deployment](t, objs, "skydns")
	ha.kube2sky = object[*appsv1.Deployment](t, objs, "kube2sky")
	return ha
}

// TestHAManifests creates every object of manifests/ha in a real
// kube-apiserver, with the RBAC and the kube-dns Service it shares with
// the single pod and the Secrets make-certs.sh makes, and checks what the
// shape rests on: replicas and disruption budgets, etcd members that find
// each other without cluster DNS, every TLS file a flag names mounted from
// a Secret that holds it, certificates that verify for the addresses
// dialled, the flags accepted by the binaries' own parsers, leader
// election, and RBAC that allows kube2sky what it does and nothing else.
func TestHAManifests(t *testing.T) {
	cluster := harness.StartCluster(t)
	var objs []runtime.Object
	for _, f := range []string{"base/kube2sky-rbac.yaml", "base/skydns-svc.yaml"} {
		objs = append(objs, applyManifest(t, cluster, f)...)
	}
	objs = append(objs, applyHASecrets(t, cluster)...)
	for _, f := range haFiles {
		objs = append(objs, applyManifest(t, cluster, f)...)
	}
	ha := newHAManifests(t, objs)

	for name, w := range map[string]struct {
		want     int32
		replicas *int32
		pod      v1.PodTemplateSpec
	}{
		"etcd":     {3, ha.etcd.Spec.Replicas, ha.etcd.Spec.Template},
		"skydns":   {3, ha.skydns.Spec.Replicas, ha.skydns.Spec.Template},
		"kube2sky": {2, ha.kube2sky.Spec.Replicas, ha.kube2sky.Spec.Template},
	} {
		t.Run(name+" replicas, budget, spread", func(t *testing.T) {
			if *w.replicas != w.want {
				t.Errorf("%d replicas, want %d", *w.replicas, w.want)
			}
			pdb := selecting[*policyv1.PodDisruptionBudget](t, ha.objs, w.pod.Labels, func(p *policyv1.PodDisruptionBudget) labels.Selector {
				s, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
				if err != nil {
					t.Fatal(err)
				}
				return s
			})
			if n := disruptionsAllowed(pdb, *w.replicas); n != 1 {
				t.Errorf("PodDisruptionBudget %s allows %d of %d away at once, want 1", pdb.Name, n, *w.replicas)
			}
			if !spreadsAcrossNodes(w.pod.Spec, w.pod.Labels) {
				t.Errorf("no preferred anti-affinity across nodes for its own pods: %+v", w.pod.Spec.Affinity)
			}
			checkRestricted(t, w.pod.Spec)
		})
	}
	t.Run("etcd members", func(t *testing.T) { checkEtcdMembers(t, ha) })
	t.Run("skydns and kube2sky flags, Secrets, certificates", func(t *testing.T) { checkEtcdClients(t, ha) })
	t.Run("kube-dns Service", func(t *testing.T) {
		svc := object[*v1.Service](t, ha.objs, "kube-dns")
		sel := labels.SelectorFromSet(svc.Spec.Selector)
		if svc.Spec.ClusterIP != "10.0.0.10" || !sel.Matches(labels.Set(ha.skydns.Spec.Template.Labels)) {
			t.Errorf("kube-dns Service %s selecting %v, want 10.0.0.10 selecting skydns's pods %v",
				svc.Spec.ClusterIP, svc.Spec.Selector, ha.skydns.Spec.Template.Labels)
		}
		for _, other := range []map[string]string{ha.kube2sky.Spec.Template.Labels, ha.etcd.Spec.Template.Labels} {
			if sel.Matches(labels.Set(other)) {
				t.Errorf("kube-dns Service selects %v, which serve no DNS", other)
			}
		}
	})
	t.Run("kube2sky RBAC", func(t *testing.T) { checkKube2skyRBAC(t, cluster, ha) })
}

// checkEtcdMembers: three members starting together, each advertising a
// name its /etc/hosts maps to a Service of its own with a fixed IP, so
// that no member needs cluster DNS; mTLS for clients and peers, the
// project's compaction and quota, data on a claimed volume.
func checkEtcdMembers(t *testing.T, ha *haManifests) {
	sts, spec := ha.etcd, ha.etcd.Spec.Template.Spec
	c := container(t, spec, "etcd")
	args := flagValues(c.Args)
	for flag, want := range map[string]string{
		"client-cert-auth": "true", "peer-client-cert-auth": "true", "initial-cluster-state": "new",
		"auto-compaction-mode": "periodic", "auto-compaction-retention": "5m", "quota-backend-bytes": "268435456",
	} {
		if args[flag] != want {
			t.Errorf("--%s=%q, want %q", flag, args[flag], want)
		}
	}
	if sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("podManagementPolicy %q: members wait for each other's readiness", sts.Spec.PodManagementPolicy)
	}
	headless := object[*v1.Service](t, ha.objs, sts.Spec.ServiceName)
	if headless.Spec.ClusterIP != v1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("governing Service %s: clusterIP %q, publishNotReadyAddresses %v", headless.Name,
			headless.Spec.ClusterIP, headless.Spec.PublishNotReadyAddresses)
	}
	if spec.DNSPolicy != v1.DNSDefault || !hasPodNameEnv(c) {
		t.Errorf("dnsPolicy %q (want Default: cluster DNS is what etcd stores), POD_NAME from metadata.name %v",
			spec.DNSPolicy, hasPodNameEnv(c))
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 || !mountedAbove(c, sts.Spec.VolumeClaimTemplates[0].Name, args["data-dir"]) {
		t.Errorf("--data-dir %s is not on the claimed volume %+v", args["data-dir"], sts.Spec.VolumeClaimTemplates)
	}

	hosts := map[string]string{}
	for _, h := range spec.HostAliases {
		for _, n := range h.Hostnames {
			hosts[n] = h.IP
		}
	}
	initial := map[string]string{}
	for _, m := range strings.Split(args["initial-cluster"], ",") {
		name, peerURL, _ := strings.Cut(m, "=")
		initial[name] = peerURL
	}
	if len(initial) != int(*sts.Spec.Replicas) {
		t.Errorf("--initial-cluster has %d members, the StatefulSet %d", len(initial), *sts.Spec.Replicas)
	}
	for i := range *sts.Spec.Replicas {
		member := fmt.Sprintf("%s-%d", sts.Name, i)
		expand := func(s string) string { return strings.ReplaceAll(s, "$(POD_NAME)", member) }
		if got := expand(args["initial-advertise-peer-urls"]); got != initial[member] {
			t.Errorf("%s advertises %q, --initial-cluster says %q", member, got, initial[member])
		}
		peer, client := mustURL(t, initial[member]), mustURL(t, expand(args["advertise-client-urls"]))
		svc := selecting[*v1.Service](t, ha.objs, map[string]string{"statefulset.kubernetes.io/pod-name": member},
			func(s *v1.Service) labels.Selector { return labels.SelectorFromSet(s.Spec.Selector) })
		for _, u := range []*url.URL{peer, client} {
			if ip := hosts[u.Hostname()]; ip == "" || ip != svc.Spec.ClusterIP || !servesPort(svc, u.Port()) {
				t.Errorf("%s: %s is %q in /etc/hosts, its Service %s is %s with ports %v", member, u, ip,
					svc.Name, svc.Spec.ClusterIP, svc.Spec.Ports)
			}
		}
		if !svc.Spec.PublishNotReadyAddresses {
			t.Errorf("Service %s: members must reach each other before they are ready", svc.Name)
		}
	}
}

// checkEtcdClients: skydns and kube2sky take their flags, dial every
// member's Service IP over TLS with a client certificate from a mounted
// Secret, and the certificates verify for what each side dials.
func checkEtcdClients(t *testing.T, ha *haManifests) {
	skydnsPod, kube2skyPod, etcdPod := ha.skydns.Spec.Template.Spec, ha.kube2sky.Spec.Template.Spec, ha.etcd.Spec.Template.Spec
	checkDeploymentProbes(t, skydnsPod.Containers)
	checkDeploymentProbes(t, kube2skyPod.Containers)

	sc := skydnsConfig(t, container(t, skydnsPod, "skydns"))
	kc := kube2skyConfig(t, container(t, kube2skyPod, "kube2sky").Args)
	if !kc.LeaderElect.Enabled || !hasPodNameEnv(container(t, kube2skyPod, "kube2sky")) {
		t.Errorf("kube2sky: --leader-elect %v, POD_NAME from metadata.name %v", kc.LeaderElect.Enabled,
			hasPodNameEnv(container(t, kube2skyPod, "kube2sky")))
	}
	var members []string
	for _, o := range ha.objs {
		if s, ok := o.(*v1.Service); ok && strings.HasPrefix(s.Spec.Selector["statefulset.kubernetes.io/pod-name"], ha.etcd.Name) {
			members = append(members, "https://"+s.Spec.ClusterIP+":2379")
		}
	}
	if !slices.Equal(sortedSplit(sc.Machines), sortedSplit(strings.Join(members, ","))) ||
		sc.Machines != kc.EtcdServer {
		t.Errorf("skydns dials %s and kube2sky %s, want every member's Service IP %v", sc.Machines, kc.EtcdServer, members)
	}

	etcd := container(t, etcdPod, "etcd")
	args := flagValues(etcd.Args)
	file := func(spec v1.PodSpec, c v1.Container, name string) []byte {
		return secretFile(t, spec, c, ha.secrets, name)
	}
	serverCert := file(etcdPod, etcd, args["cert-file"])
	clientsCA := file(etcdPod, etcd, args["trusted-ca-file"])
	keyPair(t, "etcd server", serverCert, file(etcdPod, etcd, args["key-file"]))
	peerCert := file(etcdPod, etcd, args["peer-cert-file"])
	keyPair(t, "etcd peer", peerCert, file(etcdPod, etcd, args["peer-key-file"]))
	peersCA := file(etcdPod, etcd, args["peer-trusted-ca-file"])

	skydnsC, kube2skyC := container(t, skydnsPod, "skydns"), container(t, kube2skyPod, "kube2sky")
	for _, client := range []struct {
		name           string
		cert, key, ca  []byte
		endpointsFlags string
	}{
		{"skydns", file(skydnsPod, skydnsC, sc.TLSPem), file(skydnsPod, skydnsC, sc.TLSKey), file(skydnsPod, skydnsC, sc.CACert), sc.Machines},
		{"kube2sky", file(kube2skyPod, kube2skyC, kc.EtcdCertFile), file(kube2skyPod, kube2skyC, kc.EtcdKeyFile),
			file(kube2skyPod, kube2skyC, kc.EtcdCAFile), kc.EtcdServer},
	} {
		leaf := keyPair(t, client.name, client.cert, client.key)
		// etcd matches a client certificate's SANs against the address it
		// connects from, which for a pod is not known in advance.
		if leaf != nil && (len(leaf.IPAddresses) > 0 || len(leaf.DNSNames) > 0) {
			t.Errorf("%s's client certificate has SANs %v %v", client.name, leaf.IPAddresses, leaf.DNSNames)
		}
		verify(t, client.name+"'s certificate by etcd", client.cert, clientsCA, "", x509.ExtKeyUsageClientAuth)
		for _, ep := range strings.Split(client.endpointsFlags, ",") {
			verify(t, "etcd's certificate by "+client.name, serverCert, client.ca, mustURL(t, ep).Hostname(), x509.ExtKeyUsageServerAuth)
		}
	}
	for _, p := range strings.Split(args["initial-cluster"], ",") {
		_, peerURL, _ := strings.Cut(p, "=")
		verify(t, "a peer's certificate as server", peerCert, peersCA, mustURL(t, peerURL).Hostname(), x509.ExtKeyUsageServerAuth)
	}
	verify(t, "a peer's certificate as client", peerCert, peersCA, "", x509.ExtKeyUsageClientAuth)
}

// checkKube2skyRBAC asks the apiserver what kube2sky's ServiceAccount may
// do: list and watch what it mirrors, get and update its Lease, create
// Leases in the Lease's namespace; nothing else it is asked here.
func checkKube2skyRBAC(t *testing.T, cluster *harness.Cluster, ha *haManifests) {
	kc := kube2skyConfig(t, container(t, ha.kube2sky.Spec.Template.Spec, "kube2sky").Args)
	sa := object[*v1.ServiceAccount](t, ha.objs, ha.kube2sky.Spec.Template.Spec.ServiceAccountName)
	if sa.Namespace != ha.kube2sky.Namespace {
		t.Fatalf("ServiceAccount %s/%s, Deployment in %s", sa.Namespace, sa.Name, ha.kube2sky.Namespace)
	}
	ns, lease := kc.LeaderElect.ResourceNamespace, kc.LeaderElect.ResourceName
	const coord = "coordination.k8s.io"
	for _, a := range []struct {
		verb, group, resource, namespace, name string
		want                                   bool
	}{
		{"list", "", "services", "", "", true}, {"watch", "", "services", "", "", true},
		{"list", "", "endpoints", "", "", true}, {"watch", "", "endpoints", "", "", true},
		{"list", "", "pods", "", "", true}, {"watch", "", "pods", "", "", true},
		{"list", "discovery.k8s.io", "endpointslices", "", "", true}, {"watch", "discovery.k8s.io", "endpointslices", "", "", true},
		{"get", coord, "leases", ns, lease, true}, {"update", coord, "leases", ns, lease, true},
		{"create", coord, "leases", ns, "", true},

		{"get", "", "services", "default", "kubernetes", false}, {"create", "", "services", "default", "", false},
		{"delete", "", "endpoints", "default", "kubernetes", false}, {"get", "", "secrets", ns, "skydns-etcd-client", false},
		{"list", "", "secrets", "", "", false}, {"update", coord, "leases", ns, "kube-scheduler", false},
		{"delete", coord, "leases", ns, lease, false}, {"patch", coord, "leases", ns, lease, false},
		{"list", coord, "leases", ns, "", false}, {"watch", coord, "leases", ns, "", false},
		{"create", coord, "leases", "default", "", false}, {"get", coord, "leases", "default", lease, false},
	} {
		review, err := cluster.Admin.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authzv1.SubjectAccessReview{
			Spec: authzv1.SubjectAccessReviewSpec{
				User:   "system:serviceaccount:" + sa.Namespace + ":" + sa.Name,
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + sa.Namespace, "system:authenticated"},
				ResourceAttributes: &authzv1.ResourceAttributes{Verb: a.verb, Group: a.group, Resource: a.resource,
					Namespace: a.namespace, Name: a.name},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if review.Status.Allowed != a.want {
			t.Errorf("%s %s.%s %s/%s: allowed %v, want %v", a.verb, a.resource, a.group, a.namespace, a.name,
				review.Status.Allowed, a.want)
		}
	}
}

// object is the one object of type T named name.
func object[T interface {
	runtime.Object
	GetName() string
}](t *testing.T, objs []runtime.Object, name string) T {
	t.Helper()
	for _, o := range objs {
		if v, ok := o.(T); ok && v.GetName() == name {
			return v
		}
	}
	var zero T
	t.Fatalf("no %T named %q", zero, name)
	return zero
}

// selecting is the one object of type T whose selector matches a pod
// with podLabels.
func selecting[T interface {
	runtime.Object
	GetName() string
}](t *testing.T, objs []runtime.Object, podLabels map[string]string, selector func(T) labels.Selector) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if v, ok := o.(T); ok && selector(v).Matches(labels.Set(podLabels)) {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("%d objects of type %T select %v, want one", len(found), zero, podLabels)
	}
	return found[0]
}

func container(t *testing.T, spec v1.PodSpec, name string) v1.Container {
	t.Helper()
	for _, c := range spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return v1.Container{}
}

// flagValues maps each --flag=value (or -flag=value) of args to its value,
// and each flag without one to "true".
func flagValues(args []string) map[string]string {
	m := map[string]string{}
	for _, a := range args {
		name, value, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !ok {
			value = "true"
		}
		m[name] = value
	}
	return m
}

// kube2skyConfig is kube2sky's configuration from args, parsed as its
// main parses them; what would end it at start fails the test.
func kube2skyConfig(t *testing.T, args []string) *kube2sky.Config {
	t.Helper()
	c := kube2sky.NewConfig()
	fs := pflag.NewFlagSet("kube2sky", pflag.ContinueOnError)
	fs.SetNormalizeFunc(flagutil.UnderscoresAsDashes)
	c.AddFlags(fs)
	parseFlags(t, fs, args, c.Finish)
	return c
}

// skydnsConfig is kube2skyConfig for skydns, with the container's
// environment (SKYDNS_NAMESERVERS) as its getenv.
func skydnsConfig(t *testing.T, container v1.Container) *skydns.Config {
	t.Helper()
	env := map[string]string{}
	for _, e := range container.Env {
		env[e.Name] = e.Value
	}
	c := skydns.NewConfig(func(k string) string { return env[k] })
	fs := pflag.NewFlagSet("skydns", pflag.ContinueOnError)
	c.AddFlags(fs)
	parseFlags(t, fs, container.Args, c.Finish)
	return c
}

// healthzConfig is kube2skyConfig for exec-healthz.
func healthzConfig(t *testing.T, args []string) *healthz.Config {
	t.Helper()
	c := healthz.NewConfig()
	fs := pflag.NewFlagSet("exec-healthz", pflag.ContinueOnError)
	c.AddFlags(fs)
	parseFlags(t, fs, args, c.Finish)
	return c
}

func parseFlags(t *testing.T, fs *pflag.FlagSet, args []string, finish func() error) {
	t.Helper()
	if err := flagutil.Parse(fs, args); err != nil {
		t.Fatalf("%s %q: %v", fs.Name(), args, err)
	}
	if err := finish(); err != nil {
		t.Fatalf("%s %q: %v", fs.Name(), args, err)
	}
}

func hasPodNameEnv(c v1.Container) bool {
	return slices.ContainsFunc(c.Env, func(e v1.EnvVar) bool {
		return e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
	})
}

// mountedAbove: volume is mounted in c at dir or one of its parents.
func mountedAbove(c v1.Container, volume, dir string) bool {
	return slices.ContainsFunc(c.VolumeMounts, func(m v1.VolumeMount) bool {
		return m.Name == volume && (dir == m.MountPath || strings.HasPrefix(dir, m.MountPath+"/"))
	})
}

// secretFile is the content of the file at path in container c: the key
// of a Secret mounted at its directory, readable by the pod's user.
func secretFile(t *testing.T, spec v1.PodSpec, c v1.Container, secrets map[string]*v1.Secret, file string) []byte {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.MountPath != path.Dir(file) {
			continue
		}
		for _, vol := range spec.Volumes {
			if vol.Name != m.Name || vol.Secret == nil {
				continue
			}
			s, ok := secrets[vol.Secret.SecretName]
			if !ok || len(s.Data[path.Base(file)]) == 0 {
				t.Fatalf("%s: %s is key %s of Secret %s, which does not hold it", c.Name, file, path.Base(file), vol.Secret.SecretName)
			}
			sc := spec.SecurityContext
			if mode := vol.Secret.DefaultMode; mode == nil || *mode&0o040 == 0 || sc == nil || sc.FSGroup == nil ||
				sc.RunAsGroup == nil || *sc.FSGroup != *sc.RunAsGroup {
				t.Errorf("%s: %s is not readable by the pod's group (mode %v, securityContext %+v)", c.Name, file, mode, sc)
			}
			return s.Data[path.Base(file)]
		}
	}
	t.Fatalf("%s: %s is in no Secret mounted at %s", c.Name, file, path.Dir(file))
	return nil
}

// keyPair checks that key goes with cert, and returns the certificate.
func keyPair(t *testing.T, what string, cert, key []byte) *x509.Certificate {
	t.Helper()
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return nil
	}
	return pair.Leaf
}

// verify checks that cert chains to ca for usage and, when set, host.
func verify(t *testing.T, what string, cert, ca []byte, host string, usage x509.ExtKeyUsage) {
	t.Helper()
	block, _ := pem.Decode(cert)
	if block == nil {
		t.Errorf("%s: no PEM certificate", what)
		return
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		t.Errorf("%s: no CA certificate", what)
		return
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		t.Errorf("%s (for %q): %v", what, host, err)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil || u.Hostname() == "" || u.Scheme != "https" {
		t.Fatalf("%q: want an https URL (%v)", s, err)
	}
	return u
}

func sortedSplit(s string) []string {
	parts := strings.Split(s, ",")
	slices.Sort(parts)
	return parts
}

func servesPort(svc *v1.Service, port string) bool {
	return slices.ContainsFunc(svc.Spec.Ports, func(p v1.ServicePort) bool { return fmt.Sprint(p.Port) == port })
}

// disruptionsAllowed is how many of replicas healthy pods the budget lets
// an eviction take at once.
func disruptionsAllowed(pdb *policyv1.PodDisruptionBudget, replicas int32) int {
	switch {
	case pdb.Spec.MaxUnavailable != nil:
		return pdb.Spec.MaxUnavailable.IntValue()
	case pdb.Spec.MinAvailable != nil:
		return int(replicas) - pdb.Spec.MinAvailable.IntValue()
	}
	return int(replicas)
}

// spreadsAcrossNodes: the pods prefer nodes without another of their own.
func spreadsAcrossNodes(spec v1.PodSpec, own map[string]string) bool {
	if spec.Affinity == nil || spec.Affinity.PodAntiAffinity == nil {
		return false
	}
	return slices.ContainsFunc(spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution,
		func(w v1.WeightedPodAffinityTerm) bool {
			sel, err := metav1.LabelSelectorAsSelector(w.PodAffinityTerm.LabelSelector)
			return err == nil && w.PodAffinityTerm.TopologyKey == "kubernetes.io/hostname" && sel.Matches(labels.Set(own))
		})
}
