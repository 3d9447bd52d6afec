package harness

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Dig runs the real dig against addr ("127.0.0.1:port") and returns its
// answer lines (+noall +answer), normalised to single spaces, and the
// status from the header comment. A dig that gets no reply fails the test.
func Dig(t testing.TB, addr string, args ...string) (status string, answers []string) {
	t.Helper()
	status, answers, err := TryDig(t, addr, args...)
	if err != nil {
		t.Fatal(err)
	}
	return status, answers
}

// TryDig is Dig for polling loops: a dig that gets no reply (a server not
// listening yet, a packet lost under load) is an error to retry, not the
// end of the test.
func TryDig(t testing.TB, addr string, args ...string) (status string, answers []string, err error) {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	full := append([]string{"@" + host, "-p", port, "+time=2", "+tries=1", "+noall", "+answer", "+comments"}, args...)
	out, err := exec.Command(Tool(t, "dig"), full...).CombinedOutput()
	if err != nil {
		return "", nil, fmt.Errorf("dig %s: %v\n%s", strings.Join(full, " "), err, out)
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
		return "", nil, fmt.Errorf("dig printed no status:\n%s", out)
	}
	return status, answers, nil
}

// Exchange sends one query with the miekg/dns client over net ("udp" or
// "tcp").
func Exchange(addr, network, name string, qtype uint16) (*dns.Msg, error) {
	req := new(dns.Msg)
	req.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	m, _, err := c.Exchange(req, addr)
	if err == nil && !m.Response {
		// Not a reply but the query itself: with nothing listening on addr,
		// a client socket that the kernel gave addr's own port (tests pick
		// ports from the ephemeral range) is connected to itself and reads
		// back what it sent, with the right id. A restarted server seemed
		// up before it had bound.
		return nil, fmt.Errorf("%s %s: got the query back, not a reply: nothing listens on %s", network, addr, addr)
	}
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

// WantAnswers checks that a reply is NOERROR and that its answer values
// (as Answers renders them) are want, in order, returning an error for
// Eventually: an empty reply is not an answer.
func WantAnswers(m *dns.Msg, err error, want ...string) error {
	if err := WantRcode(m, err, dns.RcodeSuccess); err != nil {
		return err
	}
	if got := Answers(m); !slices.Equal(got, want) {
		return fmt.Errorf("answers %q, want %q", got, want)
	}
	return nil
}
