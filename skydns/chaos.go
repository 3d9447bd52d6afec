package skydns

import (
	"context"
	"math/rand/v2"

	"github.com/miekg/dns"
)

// chaosStep answers every CHAOS-class query: the TXT names servers
// traditionally identify themselves with, SERVFAIL for the rest.
type chaosStep struct {
	domain string
	next   step
}

// legacyVersion is what SkyDNS 2.5.2c said to version.bind; monitoring
// that pins it keeps working.
const legacyVersion = "2.5.2c"

func (s *chaosStep) serve(ctx context.Context, req *request) {
	if req.q().Qclass != dns.ClassCHAOS {
		s.next.serve(ctx, req)
		return
	}
	req.reply.msg = s.answer(req)
}

// answer is out of line for the reason given at checkStep.turnAway.
//
//go:noinline
func (s *chaosStep) answer(req *request) *dns.Msg {
	m := authoritativeReply(req)
	texts := s.texts(req)
	if texts == nil {
		m.SetRcode(req.msg, dns.RcodeServerFailure)
		return m
	}
	for _, t := range texts {
		m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: req.q().Name, Rrtype: dns.TypeTXT, Class: dns.ClassCHAOS}, Txt: []string{t}})
	}
	return m
}

// texts are the strings of the TXT answer, nil for a name with none.
func (s *chaosStep) texts(req *request) []string {
	if req.q().Qtype != dns.TypeTXT {
		return nil
	}
	switch req.name {
	case "authors.bind.", s.domain:
		texts := []string{"Erik St. Martin", "Brian Ketelsen", "Miek Gieben", "Michael Crosby"}
		rand.Shuffle(len(texts), func(i, j int) { texts[i], texts[j] = texts[j], texts[i] })
		return texts
	case "version.bind.", "version.server.":
		return []string{legacyVersion}
	case "hostname.bind.", "id.server.":
		return []string{"localhost"}
	}
	return nil
}

// authoritativeReply is the start of every reply skydns builds itself
// to req. The first of a request is the request's own (newReply).
func authoritativeReply(req *request) *dns.Msg {
	m := req.newReply()
	req.setReply(m)
	m.Authoritative = true
	m.RecursionAvailable = true
	m.Compress = true
	return m
}
