package healthz

import (
	"fmt"
	"net/http"
	"time"
)

// handler serves one prober's result: 200 "ok" when the last run succeeded
// and is recent, else 503 with the result, worded as the legacy sidecar did.
func handler(p *Prober, latency time.Duration, multi bool) http.HandlerFunc {
	prefix := "Healthz probe error"
	if multi {
		prefix = "Healthz probe on " + p.probe.URL + " error"
	}
	return func(w http.ResponseWriter, _ *http.Request) {
		r := p.Last()
		switch {
		case r.Err != nil:
			http.Error(w, fmt.Sprintf("%s: %s", prefix, r), http.StatusServiceUnavailable)
		case p.now().Sub(r.At) > latency:
			http.Error(w, fmt.Sprintf("Latest result too old to be useful: %s.", r), http.StatusServiceUnavailable)
		default:
			fmt.Fprint(w, "ok")
		}
	}
}
