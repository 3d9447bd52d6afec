// Package metricslint checks, in tests, that everything a binary exposes on
// /metrics follows Prometheus's naming rules (promlint): base units, _total
// on counters, help on every metric, snake_case names and labels.
package metricslint

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/skypod/skypod/internal/httpserve"
)

// Registry is the registry a binary serves (httpserve.NewRegistry) that
// also remembers the name of every metric registered on it, so Check can
// name a metric that was registered but never gathered: a vector with no
// label values yet is absent from Gather and would escape the lint.
type Registry struct {
	*prometheus.Registry
	names []string
}

// NewRegistry returns an empty Registry with the Go runtime and process
// collectors, as each binary has.
func NewRegistry() *Registry {
	return &Registry{Registry: httpserve.NewRegistry()}
}

// Register registers c and records the names it describes.
func (r *Registry) Register(c prometheus.Collector) error {
	if err := r.Registry.Register(c); err != nil {
		return err
	}
	descs := make(chan *prometheus.Desc)
	go func() {
		c.Describe(descs)
		close(descs)
	}()
	for d := range descs {
		r.names = append(r.names, descName(d))
	}
	return nil
}

// MustRegister is Register that panics, as prometheus.Registry's does.
func (r *Registry) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// fqName is how Desc.String starts; client_golang has no accessor for the
// name, and this format has been stable since its first release.
var fqName = regexp.MustCompile(`^Desc\{fqName: ("(?:[^"\\]|\\.)*")`)

func descName(d *prometheus.Desc) string {
	m := fqName.FindStringSubmatch(d.String())
	if m == nil {
		return d.String() // Cannot be gathered under this name: Check reports it whole.
	}
	name, err := strconv.Unquote(m[1])
	if err != nil {
		return d.String()
	}
	return name
}

// Check fails t for each of r's Problems. Callers observe one label set
// on each vector before calling it.
func Check(t testing.TB, r *Registry) {
	t.Helper()
	problems, err := Problems(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// Problems gathers r and lists every promlint problem and every metric
// registered through r that the gathered output lacks.
func Problems(r *Registry) ([]string, error) {
	families, err := r.Gather()
	if err != nil {
		return nil, fmt.Errorf("gather: %w", err)
	}
	gathered := make([]string, 0, len(families))
	for _, f := range families {
		gathered = append(gathered, f.GetName())
	}
	var problems []string
	for _, name := range r.names {
		if !slices.Contains(gathered, name) {
			problems = append(problems, fmt.Sprintf("%s: registered but not gathered; observe one label set so the lint sees it", name))
		}
	}
	lint, err := promlint.NewWithMetricFamilies(families).Lint()
	if err != nil {
		return nil, fmt.Errorf("promlint: %w", err)
	}
	for _, p := range lint {
		problems = append(problems, fmt.Sprintf("%s: %s", p.Metric, p.Text))
	}
	return problems, nil
}
