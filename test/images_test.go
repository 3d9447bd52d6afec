//go:build integration

package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"

	"github.com/skypod/skypod/test/harness"
)

// kernelUnprivilegedPortStart is the kernel's default: ports below it need
// CAP_NET_BIND_SERVICE. Docker lowers it to 0 in every container; other
// runtimes (and Kubernetes with containerd or CRI-O) keep it.
const kernelUnprivilegedPortStart = "net.ipv4.ip_unprivileged_port_start=1024"

// TestSkydnsImageBindsPort53 runs the skydns image on port 53 with the
// kernel's default unprivileged port start, once as the legacy RC runs it
// (no securityContext: the image's user and the runtime's default
// capabilities) and once for each Deployment with exactly the settings
// its pod and container declare, read from the manifest. Each must answer
// a query on :53. A run that drops every capability and adds none must
// still start the binary (on a high port): the file capability is
// permitted-only, not effective, so exec never fails for its lack.
func TestSkydnsImageBindsPort53(t *testing.T) {
	image := "skypod/skydns:v0.1.0"
	if out, err := exec.Command("docker", "image", "inspect", image).CombinedOutput(); err != nil {
		t.Fatalf("image %s is missing: run `make images` (make test builds them): %v\n%s", image, err, out)
	}
	rc := decodeKind[*v1.ReplicationController](t, "legacy/skydns-rc.yaml")
	legacy := container(t, rc.Spec.Template.Spec, "skydns")
	if rc.Spec.Template.Spec.SecurityContext != nil || legacy.SecurityContext != nil {
		t.Fatalf("the legacy RC has a securityContext; this test runs it as having none")
	}
	type imageRun struct {
		name  string
		flags []string
		args  []string
		port  int
	}
	onPort := func(port int) []string {
		return []string{fmt.Sprintf("-addr=0.0.0.0:%d", port), "-machines=http://127.0.0.1:4001", "-domain=cluster.local."}
	}
	runs := []imageRun{{"legacy RC", []string{"--sysctl", kernelUnprivilegedPortStart}, legacy.Args, 53}}
	for _, file := range []string{"modern/kube-dns-deployment.yaml", "ha/skydns.yaml"} {
		d := decodeKind[*appsv1.Deployment](t, file)
		flags := dockerSecurityFlags(d.Spec.Template.Spec, container(t, d.Spec.Template.Spec, "skydns"))
		runs = append(runs, imageRun{file, flags, onPort(53), 53})
	}
	runs = append(runs, imageRun{"every capability dropped, high port",
		[]string{"--sysctl", kernelUnprivilegedPortStart, "--cap-drop", "ALL"}, onPort(1053), 1053})
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) { checkImageAnswers(t, image, r.flags, r.args, r.port) })
	}
}

// checkImageAnswers runs image with docker flags and args, publishes its
// DNS port on loopback and waits for an answer there. Without etcd the
// in-zone name is SERVFAIL: an answer all the same, from a bound socket.
func checkImageAnswers(t *testing.T, image string, flags, args []string, port int) {
	t.Helper()
	hostPort := harness.FreePort(t)
	name := fmt.Sprintf("skypod-imagetest-%d-%d", os.Getpid(), hostPort)
	run := append([]string{"run", "-d", "--name", name, "-p", fmt.Sprintf("127.0.0.1:%d:%d/udp", hostPort, port)}, flags...)
	run = append(append(run, image), args...)
	if out, err := exec.Command("docker", run...).CombinedOutput(); err != nil {
		t.Fatalf("docker %q: %v\n%s", run, err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("docker", "logs", "--tail=20", name).CombinedOutput()
			t.Logf("docker run %q\nlogs:\n%s", run, out)
		}
		_ = exec.Command("docker", "rm", "-f", name).Run()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", hostPort)
	harness.Eventually(t, 30*time.Second, "an answer from the container's port", func() error {
		if state, _ := exec.Command("docker", "inspect", "-f", "{{.State.Status}}", name).Output(); strings.TrimSpace(string(state)) == "exited" {
			t.Fatalf("skydns exited")
		}
		m, err := harness.Exchange(addr, "udp", "kubernetes.default.svc.cluster.local.", dns.TypeA)
		return harness.WantRcode(m, err, dns.RcodeServerFailure)
	})
}

// dockerSecurityFlags turns what a pod and its container declare into
// docker run flags, and adds nothing: the user and group, the dropped and
// added capabilities, no_new_privs, a read-only root and the pod's
// sysctls over the kernel's default port start. Seccomp RuntimeDefault is
// docker's default profile.
func dockerSecurityFlags(pod v1.PodSpec, c v1.Container) []string {
	sysctls := map[string]string{"net.ipv4.ip_unprivileged_port_start": "1024"}
	var flags []string
	if psc := pod.SecurityContext; psc != nil {
		if psc.RunAsUser != nil {
			user := fmt.Sprint(*psc.RunAsUser)
			if psc.RunAsGroup != nil {
				user += fmt.Sprintf(":%d", *psc.RunAsGroup)
			}
			flags = append(flags, "--user", user)
		}
		for _, s := range psc.Sysctls {
			sysctls[s.Name] = s.Value
		}
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.Capabilities != nil {
			for _, drop := range sc.Capabilities.Drop {
				flags = append(flags, "--cap-drop", string(drop))
			}
			for _, add := range sc.Capabilities.Add {
				flags = append(flags, "--cap-add", string(add))
			}
		}
		if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
			flags = append(flags, "--security-opt", "no-new-privileges")
		}
		if sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
			flags = append(flags, "--read-only")
		}
	}
	names := make([]string, 0, len(sysctls))
	for name := range sysctls {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		flags = append(flags, "--sysctl", name+"="+sysctls[name])
	}
	return flags
}

// decodeKind is the one object of type T in manifests/file.
func decodeKind[T any](t *testing.T, file string) T {
	t.Helper()
	path := filepath.Join("..", "manifests", file)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var found []T
	for _, obj := range decodeYAML(t, path, raw) {
		if v, ok := obj.(T); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("%s holds %d objects of type %T, want one", file, len(found), zero)
	}
	return found[0]
}
