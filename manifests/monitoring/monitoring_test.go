// Package monitoring holds no code: its tests hold the scrape
// configuration, the ServiceMonitor and the dashboard to the manifests
// they watch. They need Go only; test/monitoring_test.go checks the
// metrics against the binaries' real /metrics and runs promtool.
package monitoring

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// metricsPorts are the container ports the binaries serve /metrics on,
// by container name, as every manifest names them.
var metricsPorts = map[string]string{"skydns": "metrics", "kube2sky": "kube2sky-http", "healthz": "healthz-http"}

// workloads are the manifests whose pods are scraped.
var workloads = []string{"../legacy/skydns-rc.yaml", "../modern/kube-dns-deployment.yaml", "../ha/skydns.yaml", "../ha/kube2sky.yaml"}

// serviceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor
// the file uses; decoding is strict, so a misspelt field fails.
type serviceMonitor struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// pod is a workload's pod template with where it came from.
type pod struct {
	file string
	tmpl v1.PodTemplateSpec
}

func TestServiceMonitor(t *testing.T) {
	services, sm := readServiceMonitor(t)
	if sm.APIVersion != "monitoring.coreos.com/v1" || sm.Kind != "ServiceMonitor" || sm.Metadata.Name == "" {
		t.Fatalf("not a ServiceMonitor: %s %s %q", sm.APIVersion, sm.Kind, sm.Metadata.Name)
	}
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil || sel.Empty() {
		t.Fatalf("selector %+v: %v (an empty one selects every Service)", sm.Spec.Selector, err)
	}
	endpoints := map[string]bool{}
	for _, e := range sm.Spec.Endpoints {
		if d, err := time.ParseDuration(e.Interval); err != nil || d <= 0 || e.Path != "/metrics" {
			t.Errorf("endpoint %s: interval %q (%v), path %q", e.Port, e.Interval, err, e.Path)
		}
		endpoints[e.Port] = true
	}
	served := map[string]bool{}
	for _, svc := range services {
		if !sel.Matches(labels.Set(svc.Labels)) || !slices.Contains(sm.Spec.NamespaceSelector.MatchNames, svc.Namespace) {
			t.Errorf("Service %s/%s is not selected", svc.Namespace, svc.Name)
		}
		for _, p := range svc.Spec.Ports {
			served[p.Name] = true
			if !endpoints[p.Name] || p.TargetPort.String() != p.Name {
				t.Errorf("Service %s port %s (target %s): want an endpoint for it, targeting the container port of its name",
					svc.Name, p.Name, p.TargetPort.String())
			}
		}
	}
	for port := range endpoints {
		if !served[port] {
			t.Errorf("endpoint %s names no Service port", port)
		}
	}
}

// Every binary's metrics port in every manifest is scraped once, by the
// plain scrape job and through the ServiceMonitor's Services; no other
// port (DNS, etcd) is.
func TestEveryMetricsPortIsScraped(t *testing.T) {
	keep := scrapeKeepRules(t)
	services, _ := readServiceMonitor(t)
	for _, p := range readPods(t) {
		for _, c := range p.tmpl.Spec.Containers {
			var kept, viaService []string
			for _, port := range c.Ports {
				meta := map[string]string{
					"__meta_kubernetes_pod_annotation_prometheus_io_scrape": p.tmpl.Annotations["prometheus.io/scrape"],
					"__meta_kubernetes_pod_label_k8s_app":                   p.tmpl.Labels["k8s-app"],
					"__meta_kubernetes_pod_container_port_name":             port.Name,
				}
				if keep(meta) {
					kept = append(kept, port.Name)
				}
				if port.Name != "" && servedBy(services, p.tmpl.Labels, port.Name) {
					viaService = append(viaService, port.Name)
				}
			}
			var want []string
			if name, ok := metricsPorts[c.Name]; ok {
				want = []string{name}
			}
			if !slices.Equal(kept, want) || !slices.Equal(viaService, want) {
				t.Errorf("%s %s: scrape job keeps ports %q, the Services target %q; want %q", p.file, c.Name, kept, viaService, want)
			}
		}
	}
}

func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct{ Name, Type string } `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID         int                     `json:"id"`
			Type       string                  `json:"type"`
			Title      string                  `json:"title"`
			Datasource struct{ UID string }    `json:"datasource"`
			GridPos    struct{ X, W int }      `json:"gridPos"`
			Targets    []struct{ Expr string } `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || len(d.Templating.List) != 1 || d.Templating.List[0].Type != "datasource" {
		t.Fatalf("uid %q, templating %+v: want a uid and one datasource variable", d.UID, d.Templating.List)
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: id %d repeated, or past the grid's 24 columns", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${"+d.Templating.List[0].Name+"}" || len(p.Targets) == 0 ||
			slices.ContainsFunc(p.Targets, func(q struct{ Expr string }) bool { return strings.TrimSpace(q.Expr) == "" }) {
			t.Errorf("panel %q: datasource %q, targets %+v", p.Title, p.Datasource.UID, p.Targets)
		}
	}
}

// readServiceMonitor decodes servicemonitor.yaml: its Services, and its
// one ServiceMonitor strictly.
func readServiceMonitor(t *testing.T) ([]*v1.Service, serviceMonitor) {
	t.Helper()
	var services []*v1.Service
	var sms []serviceMonitor
	for _, doc := range documents(t, "servicemonitor.yaml") {
		var head metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatal(err)
		}
		if head.Kind == "ServiceMonitor" {
			var sm serviceMonitor
			if err := yaml.UnmarshalStrict(doc, &sm); err != nil {
				t.Fatalf("ServiceMonitor: %v", err)
			}
			sms = append(sms, sm)
			continue
		}
		if svc, ok := decode(t, doc).(*v1.Service); ok {
			services = append(services, svc)
		} else {
			t.Fatalf("servicemonitor.yaml: unexpected %s", head.Kind)
		}
	}
	if len(sms) != 1 || len(services) == 0 {
		t.Fatalf("%d ServiceMonitors, %d Services: want one and some", len(sms), len(services))
	}
	return services, sms[0]
}

// readPods are the pod templates of the workloads.
func readPods(t *testing.T) []pod {
	t.Helper()
	var pods []pod
	for _, f := range workloads {
		for _, doc := range documents(t, f) {
			switch o := decode(t, doc).(type) {
			case *v1.ReplicationController:
				pods = append(pods, pod{f, *o.Spec.Template})
			case *appsv1.Deployment:
				pods = append(pods, pod{f, o.Spec.Template})
			}
		}
	}
	return pods
}

// scrapeKeepRules is the conjunction of the keep rules of
// prometheus-scrape.yaml's one job, as Prometheus applies them: the
// source labels joined by ";", the regex anchored at both ends.
func scrapeKeepRules(t *testing.T) func(map[string]string) bool {
	t.Helper()
	raw, err := os.ReadFile("prometheus-scrape.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			RelabelConfigs []struct {
				SourceLabels []string `json:"source_labels"`
				Regex        string   `json:"regex"`
				Action       string   `json:"action"`
				TargetLabel  string   `json:"target_label"`
			} `json:"relabel_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil || len(cfg.ScrapeConfigs) != 1 {
		t.Fatalf("prometheus-scrape.yaml: %v, want one job", err)
	}
	type rule struct {
		sources []string
		re      *regexp.Regexp
	}
	var rules []rule
	for _, r := range cfg.ScrapeConfigs[0].RelabelConfigs {
		if r.Action == "keep" {
			rules = append(rules, rule{r.SourceLabels, regexp.MustCompile("^(?:" + r.Regex + ")$")})
		}
	}
	return func(meta map[string]string) bool {
		for _, r := range rules {
			values := make([]string, len(r.sources))
			for i, s := range r.sources {
				values[i] = meta[s]
			}
			if !r.re.MatchString(strings.Join(values, ";")) {
				return false
			}
		}
		return true
	}
}

// servedBy: a Service selects pods with podLabels and has a port that
// targets the container port named port.
func servedBy(services []*v1.Service, podLabels map[string]string, port string) bool {
	return slices.ContainsFunc(services, func(s *v1.Service) bool {
		return labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(podLabels)) &&
			slices.ContainsFunc(s.Spec.Ports, func(p v1.ServicePort) bool { return p.TargetPort.String() == port })
	})
}

// documents are the YAML documents of file.
func documents(t *testing.T, file string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var docs [][]byte
	for _, d := range strings.Split(string(raw), "\n---\n") {
		if strings.TrimSpace(d) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

func decode(t *testing.T, doc []byte) runtime.Object {
	t.Helper()
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return obj
}
