//go:build integration

package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/skypod/skypod/test/harness"
)

// exec-healthz running the real nslookup against the real skydns: healthy
// while skydns answers, 503 within a period plus the timeout once it stops,
// healthy again when it returns.
func TestExecHealthzWithNslookupAgainstSkydns(t *testing.T) {
	harness.Tool(t, "nslookup")
	etcd := harness.StartEtcd(t)
	etcd.Put(etcd.Client(), "/skydns/local/cluster/svc/default/kubernetes/f488b1a2", `{"host":"10.0.0.1","priority":10,"weight":10,"ttl":30}`)
	sky := startSkydns(t, etcd.URL)
	_, dnsPort, _ := strings.Cut(sky.Addr, ":")
	port := harness.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", port)
	cmd := fmt.Sprintf("-cmd=nslookup -port=%s -timeout=1 kubernetes.default.svc.cluster.local 127.0.0.1 >/dev/null", dnsPort)
	hz := harness.Start(t, "exec-healthz", harness.Binary(t, "exec-healthz"),
		[]string{cmd, fmt.Sprintf("-port=%d", port), "-period=300ms", "-timeout=3s"})

	status := func() (int, string) {
		code, body, err := harness.HTTPGet(url)
		if err != nil {
			return 0, err.Error()
		}
		return code, body
	}
	// Past the first runs, so the result is a real one and not the initial ok.
	harness.Eventually(t, 10*time.Second, "a successful probe", func() error {
		if exited, err := hz.Exited(); exited {
			t.Fatalf("exec-healthz exited: %v", err)
		}
		if !strings.Contains(metricText(t, port), `exechealthz_probe_runs_total{url="/healthz"}`) {
			return fmt.Errorf("no run yet")
		}
		if code, body := status(); code != 200 || body != "ok" {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})

	addr := sky.Addr
	sky.Kill()
	stopped := time.Now()
	harness.Eventually(t, 300*time.Millisecond+3*time.Second+2*time.Second, "503 once skydns is gone", func() error {
		if code, body := status(); code != 503 || !strings.HasPrefix(body, "Healthz probe error: Result of last exec:") {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
	t.Logf("503 after %.2fs", time.Since(stopped).Seconds())

	startSkydns(t, etcd.URL, "-addr="+addr) // The later -addr wins.
	harness.Eventually(t, 10*time.Second, "healthy again", func() error {
		if code, body := status(); code != 200 || body != "ok" {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
	if code, _, _ := harness.HTTPGet(fmt.Sprintf("http://127.0.0.1:%d/quit", port)); code != 404 {
		t.Errorf("/quit = %d, want 404", code)
	}
	if exited, _ := hz.Exited(); exited {
		t.Fatal("exec-healthz exited")
	}
}

func metricText(t *testing.T, port int) string {
	t.Helper()
	_, body, _ := harness.HTTPGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	return body
}
