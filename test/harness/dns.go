package harness

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Dig runs the real dig against addr ("127.0.0.1:port") and returns its
// answer lines (+noall +answer), normalised to single spaces, and the
// status from the header comment.
func Dig(t testing.TB, addr string, args ...string) (status string, answers []string) {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	full := append([]string{"@" + host, "-p", port, "+time=2", "+tries=1", "+noall", "+answer", "+comments"}, args...)
	out, err := exec.Command(Tool(t, "dig"), full...).CombinedOutput()
	if err != nil {
		t.Fatalf("dig %s: %v\n%s", strings.Join(full, " "), err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if i := strings.Index(line, "status: "); i >= 0 {
			status, _, _ = strings.Cut(line[i+len("status: "):], ",")
		}
		if line != "" && !strings.HasPrefix(line, ";") {
			answers = append(answers, strings.Join(strings.Fields(line), " "))
		}
	}
	if status == "" {
		t.Fatalf("dig printed no status:\n%s", out)
	}
	return status, answers
}

// Exchange sends one query with the miekg/dns client over net ("udp" or
// "tcp").
func Exchange(addr, network, name string, qtype uint16) (*dns.Msg, error) {
	req := new(dns.Msg)
	req.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	m, _, err := c.Exchange(req, addr)
	return m, err
}

// Answers renders the answer section's values (the A address, SRV
// "prio weight port target", ...), for compact assertions.
func Answers(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		hdr := rr.Header().String()
		out = append(out, strings.TrimSpace(strings.TrimPrefix(rr.String(), hdr)))
	}
	return out
}

// WantRcode checks a reply's rcode, returning an error for Eventually.
func WantRcode(m *dns.Msg, err error, rcode int) error {
	if err != nil {
		return err
	}
	if m.Rcode != rcode {
		return fmt.Errorf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[rcode])
	}
	return nil
}
