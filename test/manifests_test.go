//go:build integration

package test

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"

	"github.com/skypod/skypod/test/harness"
)

// Every manifest is accepted by a real kube-apiserver, and the pod keeps the
// legacy arguments exactly.
func TestManifestsAreAcceptedByTheAPIServer(t *testing.T) {
	cluster := harness.StartCluster(t)
	var rc *v1.ReplicationController
	var deploy *appsv1.Deployment
	var svc *v1.Service
	for _, file := range []string{"base/kube2sky-rbac.yaml", "base/skydns-svc.yaml", "legacy/skydns-rc.yaml", "modern/kube-dns-deployment.yaml"} {
		for _, obj := range applyManifest(t, cluster, file) {
			switch o := obj.(type) {
			case *v1.ReplicationController:
				rc = o
			case *appsv1.Deployment:
				deploy = o
			case *v1.Service:
				svc = o
			}
		}
	}
	if svc == nil || svc.Spec.ClusterIP != "10.0.0.10" || len(svc.Spec.Ports) != 2 {
		t.Fatalf("kube-dns Service: %+v", svc)
	}
	checkLegacyArgs(t, rc)
	if deploy == nil {
		t.Fatal("no Deployment")
	}
	checkRestricted(t, deploy.Spec.Template.Spec)
	checkDeploymentProbes(t, deploy.Spec.Template.Spec.Containers)
}

// legacyArgs are the 1.2 pod's arguments, by container.
var legacyArgs = map[string][]string{
	"kube2sky": {"--domain=cluster.local"},
	"skydns":   {"-machines=http://127.0.0.1:4001", "-addr=0.0.0.0:53", "-ns-rotate=false", "-domain=cluster.local."},
	"healthz":  {"-cmd=nslookup kubernetes.default.svc.cluster.local 127.0.0.1 >/dev/null", "-port=8080"},
}

// checkLegacyArgs: the RC has the 1.2 pod's four containers, each with
// the 1.2 arguments.
func checkLegacyArgs(t *testing.T, rc *v1.ReplicationController) {
	t.Helper()
	if rc == nil || len(rc.Spec.Template.Spec.Containers) != 4 {
		t.Fatalf("ReplicationController: %+v", rc)
	}
	for _, c := range rc.Spec.Template.Spec.Containers {
		if want, ok := legacyArgs[c.Name]; ok && !slices.Equal(c.Args, want) {
			t.Errorf("%s args %q, want the 1.2 arguments %q", c.Name, c.Args, want)
		}
	}
}

// checkRestricted: the pod runs as non-root, each container with a
// read-only root filesystem and every capability dropped; only skydns adds
// one, NET_BIND_SERVICE.
func checkRestricted(t *testing.T, spec v1.PodSpec) {
	t.Helper()
	if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("the pod must run as non-root")
	}
	for _, c := range spec.Containers {
		s := c.SecurityContext
		if s == nil || s.ReadOnlyRootFilesystem == nil || !*s.ReadOnlyRootFilesystem || s.Capabilities == nil ||
			!slices.Equal(s.Capabilities.Drop, []v1.Capability{"ALL"}) {
			t.Errorf("%s: want a read-only root filesystem and all capabilities dropped: %+v", c.Name, s)
			continue
		}
		if add := s.Capabilities.Add; len(add) > 0 && (c.Name != "skydns" || !slices.Equal(add, []v1.Capability{"NET_BIND_SERVICE"})) {
			t.Errorf("%s adds capabilities %v; only skydns may, and only NET_BIND_SERVICE", c.Name, add)
		}
	}
}

// checkDeploymentProbes: each liveness probe is the container's own, so it
// restarts the container that is unhealthy (docs/architecture.md, "Probes").
func checkDeploymentProbes(t *testing.T, containers []v1.Container) {
	t.Helper()
	want := map[string][2]string{ // Container: liveness, readiness (path:port, "" for none).
		"etcd": {"", ""}, "kube2sky": {"/healthz:8081", "/readiness:8081"},
		"skydns": {"/healthz:9153", "/ready:9153"}, "healthz": {"", ""},
	}
	probe := func(p *v1.Probe) string {
		if p == nil || p.HTTPGet == nil {
			return ""
		}
		return p.HTTPGet.Path + ":" + p.HTTPGet.Port.String()
	}
	for _, c := range containers {
		if got := [2]string{probe(c.LivenessProbe), probe(c.ReadinessProbe)}; got != want[c.Name] {
			t.Errorf("%s: liveness, readiness %q, want %q", c.Name, got, want[c.Name])
		}
	}
}
