//go:build integration

package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"

	"github.com/skypod/skypod/test/harness"
)

const monitoringDir = "../manifests/monitoring"

// TestMonitoring: promtool accepts the alerting rules and passes their
// unit tests, and every metric the rules and the dashboard use is one a
// real skydns, kube2sky or exec-healthz exports on /metrics.
func TestMonitoring(t *testing.T) {
	t.Run("promtool", func(t *testing.T) {
		promtool := harness.Tool(t, "promtool")
		for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "rules.test.yaml"}} {
			cmd := exec.CommandContext(t.Context(), promtool, args...)
			cmd.Dir = monitoringDir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	})
	t.Run("metrics exported", func(t *testing.T) {
		exported := exportedMetrics(t)
		used := map[string]bool{}
		for where, expr := range monitoringExprs(t) {
			for _, name := range projectMetrics.FindAllString(stripStrings(expr), -1) {
				used[name] = true
				if !isExported(exported, name) {
					t.Errorf("%s uses %s, which no binary exports", where, name)
				}
			}
		}
		for _, prefix := range []string{"skydns_", "kube2sky_", "exechealthz_"} {
			if !anyPrefixed(used, prefix) {
				t.Errorf("no rule or panel uses a %s metric", prefix)
			}
		}
	})
}

// projectMetrics finds the names of the project's metrics in PromQL:
// everything with one of the three binaries' prefixes, whatever its
// place in the expression.
var projectMetrics = regexp.MustCompile(`\b(?:skydns|kube2sky|exechealthz)_[a-zA-Z0-9_]+`)

// stripStrings blanks PromQL's string literals, where label values such
// as a job's name could look like a metric.
func stripStrings(expr string) string {
	return regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`").ReplaceAllString(expr, `""`)
}

// isExported: name is a family of exported, or a histogram's series.
func isExported(exported map[string]dto.MetricType, name string) bool {
	if _, ok := exported[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && exported[base] == dto.MetricType_HISTOGRAM {
			return true
		}
	}
	return false
}

func anyPrefixed(names map[string]bool, prefix string) bool {
	for n := range names {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	return false
}

// monitoringExprs are the PromQL expressions of rules.yaml's rules and
// dashboard.json's panels, by where they are.
func monitoringExprs(t *testing.T) map[string]string {
	t.Helper()
	exprs := map[string]string{}
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Record, Expr string }
		}
	}
	readInto(t, "rules.yaml", func(b []byte, v any) error { return yaml.Unmarshal(b, v) }, &rules)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs["rule "+r.Alert+r.Record] = r.Expr
		}
	}
	var dashboard struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	readInto(t, "dashboard.json", json.Unmarshal, &dashboard)
	for _, p := range dashboard.Panels {
		for i, q := range p.Targets {
			exprs[fmt.Sprintf("panel %q target %d", p.Title, i)] = q.Expr
		}
	}
	if len(exprs) < 10 {
		t.Fatalf("only %d expressions found", len(exprs))
	}
	return exprs
}

func readInto(t *testing.T, file string, unmarshal func([]byte, any) error, v any) {
	t.Helper()
	raw, err := os.ReadFile(monitoringDir + "/" + file)
	if err != nil {
		t.Fatal(err)
	}
	if err := unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// exportedMetrics runs the pod (etcd, kube2sky against a real apiserver,
// skydns, exec-healthz), sends a query skydns answers and one it
// forwards, waits for exec-healthz's first run (its metrics are by
// probe, so absent before), and reads each binary's /metrics.
func exportedMetrics(t *testing.T) map[string]dto.MetricType {
	t.Helper()
	cluster := harness.StartCluster(t)
	grantKube2sky(t, cluster)
	pod := startDNSPod(t, cluster)
	harness.Dig(t, pod.skydns.Addr, "kubernetes.default.svc.cluster.local", "A")
	if _, answers := harness.Dig(t, pod.skydns.Addr, "www.example.com", "A"); len(answers) == 0 { // Forwarded to the fake upstream.
		t.Fatal("www.example.com: no answer from upstream")
	}
	port := harness.FreePort(t)
	harness.Start(t, "exec-healthz", harness.Binary(t, "exec-healthz"),
		[]string{"-cmd=true", fmt.Sprintf("-port=%d", port), "-period=100ms"})
	healthz := fmt.Sprintf("http://127.0.0.1:%d", port)
	harness.Eventually(t, 10*time.Second, "exec-healthz's first run", func() error {
		if _, body, err := harness.HTTPGet(healthz + "/metrics"); err != nil || !strings.Contains(body, "exechealthz_probe_runs_total{") {
			return fmt.Errorf("not yet (%v)", err)
		}
		return nil
	})
	exported := map[string]dto.MetricType{}
	for _, base := range []string{pod.skydns.Metrics, pod.healthz, healthz} {
		code, body, err := harness.HTTPGet(base + "/metrics")
		if err != nil || code != 200 {
			t.Fatalf("%s/metrics: %d %v", base, code, err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("%s/metrics: %v", base, err)
		}
		for name, f := range families {
			exported[name] = f.GetType()
		}
	}
	return exported
}
