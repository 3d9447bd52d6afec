//go:build integration

package test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/diff"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/skypod/skypod/test/harness"
)

// overlaySettings are the values of an overlay's settings.yaml.
type overlaySettings struct {
	domain, clusterIP, upstream, tag string
}

// yaml is settings.yaml with these values.
func (s overlaySettings) yaml() string {
	return fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: dns-settings
  annotations: {config.kubernetes.io/local-config: "true"}
data: {DOMAIN: %q, CLUSTER_IP: %q, UPSTREAM_NAMESERVERS: %q, IMAGE_TAG: %q}
`, s.domain, s.clusterIP, s.upstream, s.tag)
}

var (
	// shippedSettings are those checked in: the 1.2 pod's.
	shippedSettings = overlaySettings{domain: "cluster.local", clusterIP: "10.0.0.10", tag: "v0.1.0"}
	// otherSettings differ in every value; the second domain has another
	// number of labels, as a split on "." would notice.
	otherSettings = []overlaySettings{
		{domain: "example.internal", clusterIP: "10.0.10.10", upstream: "192.0.2.53:53,[2001:db8::53]:5353", tag: "v9.9.9"},
		{domain: "k8s.corp.example", clusterIP: "10.0.20.53", upstream: "198.51.100.1:53", tag: "v0.2.0-rc.1"},
	}
)

// metricsPorts are the container ports prometheus-scrape.yaml keeps, by
// container: where each binary serves /metrics.
var metricsPorts = map[string]string{"skydns": "metrics", "kube2sky": "kube2sky-http", "healthz": "healthz-http"}

// overlays are the kustomize overlays of manifests/: the workload files
// each adds to base/, and what to check of the objects it makes.
var overlays = []struct {
	name  string
	loose []string
	check func(t *testing.T, c *harness.Cluster, objs []runtime.Object, s overlaySettings)
}{
	{"legacy", []string{"legacy/skydns-rc.yaml"}, func(t *testing.T, _ *harness.Cluster, objs []runtime.Object, s overlaySettings) {
		rc := object[*v1.ReplicationController](t, objs, "kube-dns-v11")
		if s == shippedSettings {
			checkLegacyArgs(t, rc)
		}
	}},
	{"modern", []string{"modern/kube-dns-deployment.yaml"}, func(t *testing.T, _ *harness.Cluster, objs []runtime.Object, _ overlaySettings) {
		d := object[*appsv1.Deployment](t, objs, "kube-dns")
		checkRestricted(t, d.Spec.Template.Spec)
		checkDeploymentProbes(t, d.Spec.Template.Spec.Containers)
	}},
	{"ha", haFiles, func(t *testing.T, c *harness.Cluster, objs []runtime.Object, s overlaySettings) {
		ha := newHAManifests(t, objs)
		checkEtcdMembers(t, ha)
		checkEtcdClients(t, ha)
		if s == shippedSettings { // No setting touches RBAC; its reviews take seconds.
			checkKube2skyRBAC(t, c, ha)
		}
	}},
}

// TestKustomizeOverlays builds each overlay of manifests/ with the pinned
// kustomize: as shipped it makes exactly the loose files' objects; with
// other settings, exactly those objects with each setting changed where it
// belongs, and nothing else. Both builds are created in one real
// kube-apiserver (deleted between overlays: they share names and the
// ClusterIP) and checked with the binaries' own flag parsers. The
// monitoring kustomization's Services are created beside them.
func TestKustomizeOverlays(t *testing.T) {
	cluster := harness.StartCluster(t)
	secrets := applyHASecrets(t, cluster) // Kept throughout: only the HA shape mounts them.
	t.Run("monitoring", func(t *testing.T) { checkMonitoringBuild(t, cluster) })
	for _, o := range overlays {
		t.Run(o.name, func(t *testing.T) {
			shipped := kustomizeBuild(t, filepath.Join("..", "manifests", o.name))
			sameObjects(t, looseObjects(t, o.loose), decodeYAML(t, o.name, shipped))
			builds := map[overlaySettings][]byte{shippedSettings: shipped}
			for _, s := range otherSettings {
				builds[s] = kustomizeBuild(t, withSettings(t, o.name, s))
				sameObjects(t, expectSettings(decodeYAML(t, o.name, shipped), s), decodeYAML(t, o.name, builds[s]))
			}
			for _, s := range []overlaySettings{shippedSettings, otherSettings[0]} {
				t.Run(s.domain, func(t *testing.T) {
					// Whatever was created goes, even if a create failed half way.
					t.Cleanup(func() { deleteObjects(t, cluster, decodeYAML(t, o.name, builds[s])) })
					objs := applyYAML(t, cluster, o.name, builds[s])
					checkSettings(t, objs, s)
					o.check(t, cluster, append(objs, secrets...), s)
				})
			}
		})
	}
	t.Run("etcd-in-memory", func(t *testing.T) { checkEtcdInMemory(t, cluster) })
}

// checkEtcdInMemory: the optional component etcd-in-memory, added to the
// modern overlay, changes exactly the pod's etcd volume (tmpfs, capped)
// and the etcd container's memory limit, and the apiserver takes the
// result; the legacy RC and the HA shape build unchanged with it.
func checkEtcdInMemory(t *testing.T, cluster *harness.Cluster) {
	for _, o := range []struct {
		overlay string
		patched bool
	}{{"legacy", false}, {"modern", true}, {"ha", false}} {
		t.Run(o.overlay, func(t *testing.T) {
			want := decodeYAML(t, o.overlay, kustomizeBuild(t, filepath.Join("..", "manifests", o.overlay)))
			raw := kustomizeBuild(t, withComponent(t, o.overlay, "etcd-in-memory"))
			if o.patched {
				inMemoryEtcd(t, object[*appsv1.Deployment](t, want, "kube-dns"))
			}
			sameObjects(t, want, decodeYAML(t, o.overlay, raw))
			if !o.patched {
				return
			}
			t.Cleanup(func() { deleteObjects(t, cluster, want) })
			applyYAML(t, cluster, o.overlay, raw)
		})
	}
}

// withComponent is a copy of manifests/ whose overlay also uses the
// component.
func withComponent(t *testing.T, overlay, component string) string {
	t.Helper()
	dir := copyManifests(t)
	file := filepath.Join(dir, overlay, "kustomization.yaml")
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	const list = "components:\n"
	if !strings.Contains(string(raw), list) {
		t.Fatalf("%s has no components list", file)
	}
	raw = []byte(strings.Replace(string(raw), list, list+"- ../components/"+component+"\n", 1))
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, overlay)
}

// copyManifests is a copy of manifests/ for a test to change.
func copyManifests(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("..", "manifests"))); err != nil {
		t.Fatal(err)
	}
	return dir
}

// inMemoryEtcd makes d's etcd what the component should make it.
func inMemoryEtcd(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	limit, size := resource.MustParse("1140Mi"), resource.MustParse("640Mi")
	for i, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == "etcd-storage" {
			d.Spec.Template.Spec.Volumes[i].EmptyDir = &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: &size}
		}
	}
	for _, c := range containers(d) {
		if c.Name == "etcd" {
			c.Resources.Limits[v1.ResourceMemory] = limit
			return
		}
	}
	t.Fatal("no etcd container")
}

// checkMonitoringBuild: the monitoring kustomization builds, and the
// apiserver accepts its Services; its ServiceMonitor's CRD is not there
// (manifests/monitoring's unit tests check it).
func checkMonitoringBuild(t *testing.T, cluster *harness.Cluster) {
	t.Helper()
	raw := kustomizeBuild(t, filepath.Join("..", "manifests", "monitoring"))
	var services []string
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		if !strings.HasPrefix(doc, "apiVersion: monitoring.coreos.com/v1\n") {
			services = append(services, doc)
		}
	}
	objs := applyYAML(t, cluster, "monitoring", []byte(strings.Join(services, "\n---\n")))
	if len(objs) != 2 || len(services) != 2 {
		t.Fatalf("%d documents created of %d: want the two Services", len(objs), len(services))
	}
}

// kustomizeBuild is `kustomize build dir`.
func kustomizeBuild(t *testing.T, dir string) []byte {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), harness.KustomizeBinary(t), "build", dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kustomize build %s: %v\n%s", dir, err, stderr.String())
	}
	return out
}

// withSettings is a copy of manifests/ whose overlay has settings s, and
// returns the overlay's directory in it.
func withSettings(t *testing.T, overlay string, s overlaySettings) string {
	t.Helper()
	dir := copyManifests(t)
	if err := os.WriteFile(filepath.Join(dir, overlay, "settings.yaml"), []byte(s.yaml()), 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, overlay)
}

// looseObjects are the objects of base/ and of files, all in manifests/.
func looseObjects(t *testing.T, files []string) []runtime.Object {
	t.Helper()
	var objs []runtime.Object
	for _, f := range append([]string{"base/kube2sky-rbac.yaml", "base/skydns-svc.yaml"}, files...) {
		path := filepath.Join("..", "manifests", f)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, decodeYAML(t, path, raw)...)
	}
	return objs
}

// expectSettings is objs, built with shippedSettings, as s should change
// them: the whole of each argument that embeds the domain, skydns's
// upstream, the kube-dns Service's IP, the tag of the project's images.
func expectSettings(objs []runtime.Object, s overlaySettings) []runtime.Object {
	args := map[string]string{
		"--domain=cluster.local": "--domain=" + s.domain,
		"-domain=cluster.local.": "-domain=" + s.domain + ".",
		legacyArgs["healthz"][0]: "-cmd=nslookup kubernetes.default.svc." + s.domain + " 127.0.0.1 >/dev/null",
	}
	var out []runtime.Object
	for _, o := range objs {
		o = o.DeepCopyObject()
		if svc, ok := o.(*v1.Service); ok && svc.Name == "kube-dns" {
			svc.Spec.ClusterIP = s.clusterIP
		}
		for _, c := range containers(o) {
			if _, ok := metricsPorts[c.Name]; ok {
				c.Image = strings.Split(c.Image, ":")[0] + ":" + s.tag
			}
			for i, a := range c.Args {
				if r, ok := args[a]; ok {
					c.Args[i] = r
				}
			}
			for i := range c.Env {
				if c.Env[i].Name == "SKYDNS_NAMESERVERS" {
					c.Env[i].Value = s.upstream
				}
			}
		}
		out = append(out, o)
	}
	return out
}

// containers are the containers of o's pod template, none if it has none.
func containers(o runtime.Object) []*v1.Container {
	var spec *v1.PodSpec
	switch w := o.(type) {
	case *v1.ReplicationController:
		spec = &w.Spec.Template.Spec
	case *appsv1.Deployment:
		spec = &w.Spec.Template.Spec
	case *appsv1.StatefulSet:
		spec = &w.Spec.Template.Spec
	default:
		return nil
	}
	var out []*v1.Container
	for i := range spec.Containers {
		out = append(out, &spec.Containers[i])
	}
	return out
}

// podAnnotations are the annotations of o's pod template.
func podAnnotations(o runtime.Object) map[string]string {
	switch w := o.(type) {
	case *v1.ReplicationController:
		return w.Spec.Template.Annotations
	case *appsv1.Deployment:
		return w.Spec.Template.Annotations
	case *appsv1.StatefulSet:
		return w.Spec.Template.Annotations
	}
	return nil
}

// sameObjects: got holds the objects of want, each semantically equal.
func sameObjects(t *testing.T, want, got []runtime.Object) {
	t.Helper()
	key := func(o runtime.Object) string {
		m, err := meta.Accessor(o)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%T %s/%s", o, m.GetNamespace(), m.GetName())
	}
	index := map[string]runtime.Object{}
	for _, o := range got {
		index[key(o)] = o
	}
	for _, w := range want {
		g, ok := index[key(w)]
		if !ok {
			t.Errorf("%s is missing", key(w))
			continue
		}
		delete(index, key(w))
		if !equality.Semantic.DeepEqual(w, g) {
			t.Errorf("%s differs (-want +got):\n%s", key(w), diff.Diff(w, g))
		}
	}
	for k := range index {
		t.Errorf("%s is extra", k)
	}
}

// checkSettings: the binaries' own parsers read s from every container's
// flags and environment; the kube-dns Service has s's IP; each binary's
// metrics port is declared under the name the scrape configuration keeps,
// at the port its flags serve, in a pod annotated for scraping.
func checkSettings(t *testing.T, objs []runtime.Object, s overlaySettings) {
	t.Helper()
	if svc := object[*v1.Service](t, objs, "kube-dns"); svc.Spec.ClusterIP != s.clusterIP {
		t.Errorf("kube-dns Service %s, want %s", svc.Spec.ClusterIP, s.clusterIP)
	}
	var upstream []string
	if s.upstream != "" {
		upstream = strings.Split(s.upstream, ",")
	}
	seen := map[string]bool{}
	for _, o := range objs {
		for _, c := range containers(o) {
			var domain string
			var port int
			switch c.Name {
			case "kube2sky":
				kc := kube2skyConfig(t, c.Args)
				domain, port = kc.Domain, kc.HealthzPort
			case "skydns":
				sc := skydnsConfig(t, *c)
				domain, port = sc.Domain, portOf(t, sc.MetricsAddr)
				if !slices.Equal(sc.Nameservers, upstream) {
					t.Errorf("skydns forwards to %q, want %q", sc.Nameservers, upstream)
				}
			case "healthz":
				hc := healthzConfig(t, c.Args)
				domain, port = s.domain+".", hc.Port // Its domain is in the command, checked here.
				if want := []string{"nslookup kubernetes.default.svc." + s.domain + " 127.0.0.1 >/dev/null"}; !slices.Equal(hc.Cmds, want) {
					t.Errorf("exec-healthz runs %q, want %q", hc.Cmds, want)
				}
			default:
				continue
			}
			seen[c.Name] = true
			if domain != s.domain+"." || !strings.HasSuffix(c.Image, ":"+s.tag) {
				t.Errorf("%s: domain %q, image %s; want %s. and tag %s", c.Name, domain, c.Image, s.domain, s.tag)
			}
			if !declaresPort(*c, metricsPorts[c.Name], port) || podAnnotations(o)["prometheus.io/scrape"] != "true" {
				t.Errorf("%s: want port %d named %s, in a pod annotated prometheus.io/scrape: \"true\": %+v %v",
					c.Name, port, metricsPorts[c.Name], c.Ports, podAnnotations(o))
			}
		}
	}
	if len(seen) != len(metricsPorts) {
		t.Errorf("containers %v, want each of %v", seen, metricsPorts)
	}
}

func declaresPort(c v1.Container, name string, port int) bool {
	return slices.ContainsFunc(c.Ports, func(p v1.ContainerPort) bool {
		return p.Name == name && int(p.ContainerPort) == port && p.Protocol == v1.ProtocolTCP
	})
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// deleteObjects deletes those of objs that exist, as the administrator,
// and waits until they are gone. Dependents go in the background: with no
// controller manager, the default (orphan, for an RC) would wait for ever
// on its finalizer.
func deleteObjects(t *testing.T, c *harness.Cluster, objs []runtime.Object) {
	t.Helper()
	config := c.RestConfig(harness.AdminToken)
	config.QPS, config.Burst = 100, 100 // client-go's 5 a second would make this take seconds.
	client, err := dynamic.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	background := metav1.DeletePropagationBackground
	for _, o := range objs {
		gvks, _, err := scheme.Scheme.ObjectKinds(o)
		if err != nil {
			t.Fatal(err)
		}
		m, err := meta.Accessor(o)
		if err != nil {
			t.Fatal(err)
		}
		gvr, _ := meta.UnsafeGuessKindToResource(gvks[0])
		r := client.Resource(gvr).Namespace(m.GetNamespace())
		err = r.Delete(context.Background(), m.GetName(), metav1.DeleteOptions{PropagationPolicy: &background})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete %s %s: %v", gvr.Resource, m.GetName(), err)
			continue
		}
		harness.Eventually(t, 10*time.Second, gvr.Resource+" "+m.GetName()+" gone", func() error {
			if _, err := r.Get(context.Background(), m.GetName(), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("still there (%v)", err)
			}
			return nil
		})
	}
}
