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
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/skypod/skypod/test/harness"
)

// docker-compose.yml brought up for real, as a user does in a fresh clone
// (only the host ports differ): create a Service through the apiserver,
// resolve it with dig from the host, check /healthz, tear down.
// Needs `make images` (make test builds them first).
func TestDockerCompose(t *testing.T) {
	compose := harness.Tool(t, "docker-compose")
	for _, image := range []string{"skypod/etcd:v3.6.6", "skypod/kube-apiserver:v1.34.3", "skypod/kube2sky:v0.1.0",
		"skypod/skydns:v0.1.0", "skypod/exec-healthz:v0.1.0"} {
		if out, err := exec.Command("docker", "image", "inspect", image).CombinedOutput(); err != nil {
			t.Fatalf("image %s is missing: run `make images` (make test builds them): %v\n%s", image, err, out)
		}
	}
	checkComposeRunsTheRCArguments(t)
	apiPort, dnsPort, healthzPort := harness.FreePort(t), harness.FreePort(t), harness.FreePort(t)
	project := fmt.Sprintf("skypodtest%d", os.Getpid())
	run := func(args ...string) (string, error) {
		cmd := exec.Command(compose, append([]string{"-p", project, "-f", filepath.Join("..", "docker-compose.yml")}, args...)...)
		// What a user runs, with free ports instead of the defaults: the
		// apiserver's files are compose/'s, as in a fresh clone.
		cmd.Env = append(os.Environ(), fmt.Sprintf("API_PORT=%d", apiPort),
			fmt.Sprintf("DNS_PORT=%d", dnsPort), fmt.Sprintf("HEALTHZ_PORT=%d", healthzPort))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := run("logs", "--no-color", "--tail=30")
			t.Logf("docker-compose logs:\n%s", logs)
		}
		if out, err := run("down", "-v", "--timeout", "5"); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
	})
	if out, err := run("up", "-d"); err != nil {
		t.Fatalf("docker-compose up: %v\n%s", err, out)
	}

	apiURL := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	harness.WaitAPIServerReady(t, apiURL)
	client := kubernetes.NewForConfigOrDie(harness.APIServerConfig(apiURL, harness.AdminToken))
	ctx := context.Background()
	var svc *v1.Service
	harness.Eventually(t, 30*time.Second, "create a Service", func() error {
		var err error
		svc, err = client.CoreV1().Services("default").Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "compose-web"},
			Spec:       v1.ServiceSpec{Ports: []v1.ServicePort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}}},
		}, metav1.CreateOptions{})
		return err
	})
	addr := fmt.Sprintf("127.0.0.1:%d", dnsPort)
	harness.Eventually(t, 60*time.Second, "dig from the host", func() error {
		status, answers, err := harness.TryDig(t, addr, "compose-web.default.svc.cluster.local", "A")
		if err != nil {
			return err
		}
		if got := rdata(answers); status != "NOERROR" || !slices.Equal(got, []string{"A " + svc.Spec.ClusterIP}) {
			return fmt.Errorf("%s %q", status, got)
		}
		return nil
	})
	harness.Eventually(t, 10*time.Second, "kubernetes.default over TCP", func() error {
		kubernetesSvc, err := client.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil {
			return err
		}
		m, err := harness.Exchange(addr, "tcp", "kubernetes.default.svc.cluster.local.", dns.TypeA)
		if err != nil || !slices.Equal(harness.Answers(m), []string{kubernetesSvc.Spec.ClusterIP}) {
			return fmt.Errorf("%v %v, want the A %s", m, err, kubernetesSvc.Spec.ClusterIP)
		}
		return nil
	})
	harness.Eventually(t, 30*time.Second, "/healthz ok", func() error {
		code, body, err := harness.HTTPGet(fmt.Sprintf("http://127.0.0.1:%d/healthz", healthzPort))
		if err != nil || code != 200 || strings.TrimSpace(body) != "ok" {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
}

// checkComposeRunsTheRCArguments holds docker-compose.yml to the legacy
// ReplicationController: each container runs with exactly the RC's
// arguments (kube2sky may add --kubecfg-file: compose has no service account).
func checkComposeRunsTheRCArguments(t *testing.T) {
	t.Helper()
	var compose struct {
		Services map[string]struct {
			Command []string `json:"command"`
		} `json:"services"`
	}
	raw, err := os.ReadFile(filepath.Join("..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatal(err)
	}
	raw, err = os.ReadFile(filepath.Join("..", "manifests", "legacy", "skydns-rc.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rc v1.ReplicationController
	if err := yaml.Unmarshal(raw, &rc); err != nil {
		t.Fatal(err)
	}
	for _, c := range rc.Spec.Template.Spec.Containers {
		want := c.Args
		if c.Name == "etcd" {
			want = c.Command[1:] // The image's entrypoint is the RC's command[0].
		}
		got := compose.Services[c.Name].Command
		if c.Name == "kube2sky" {
			got = slices.DeleteFunc(slices.Clone(got), func(a string) bool { return strings.HasPrefix(a, "--kubecfg-file=") })
		}
		if !slices.Equal(got, want) {
			t.Errorf("docker-compose %s runs %q; the RC gives it %q", c.Name, got, want)
		}
	}
}
