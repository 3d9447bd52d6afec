package main

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/miekg/dns"
)

// attack is one attacker, run against a DNS address until ctx ends.
type attack interface {
	run(ctx context.Context, s *session, addr string, t *traffic)
}

// scenario is one attack from issue #9, with the records it needs.
type scenario struct {
	name      string
	records   func(c config) map[string]string
	blackhole bool   // The upstream never answers (else it answers at once).
	victimNet string // The victim's transport.
	attack    func(c config) attack
	cpu       []string // Names whose A query's CPU cost is measured.
}

const (
	bigName     = "big.amp.svc." + domain // 3,000 addresses.
	breadthName = "t.svc." + domain
	gridName    = "n0.cn." + domain
)

// udpSize is what a client asks for when it wants everything.
const udpSize = dns.MaxMsgSize

func scenarios() []scenario {
	return []scenario{
		{
			name: "cname-breadth", records: func(config) map[string]string { return breadthRecords() }, victimNet: "udp",
			attack: func(c config) attack { return c.lockstep(one(breadthName, udpSize, dns.OpcodeQuery)) },
			cpu:    []string{breadthName},
		},
		{
			name: "cname-grid-9x9", records: func(config) map[string]string { return grid(9) }, victimNet: "udp",
			attack: func(c config) attack { return c.lockstep(one(gridName, udpSize, dns.OpcodeQuery)) },
			cpu:    []string{gridName},
		},
		{
			name: "wildcard-100k", records: func(c config) map[string]string { return manyServices(c.services) }, victimNet: "udp",
			attack: func(c config) attack {
				return c.lockstep(alternate(packed("any.any.svc."+domain, dns.TypeA, udpSize, dns.OpcodeQuery), packed("svc."+domain, dns.TypeA, udpSize, dns.OpcodeQuery)))
			},
			cpu: []string{"any.any.svc." + domain, "svc." + domain},
		},
		{
			name: "amplification", records: func(config) map[string]string { return withVictim(headless("amp", "big", 3000)) }, victimNet: "udp",
			attack: func(c config) attack {
				return flood{workers: 4, rate: c.ampQPS, query: one(bigName, udpSize, dns.OpcodeQuery)}
			},
			cpu: []string{bigName},
		},
		{
			name: "forward-flood", records: func(config) map[string]string { return withVictim() }, victimNet: "udp", blackhole: true,
			attack: func(c config) attack {
				return flood{workers: 8, rate: c.forwardQPS, query: randomNames(dns.OpcodeQuery, dns.TypeA)}
			},
		},
		{
			name: "odd-requests", records: func(config) map[string]string { return withVictim() }, victimNet: "udp", blackhole: true,
			attack: func(c config) attack { return flood{workers: 8, rate: c.forwardQPS, query: oddRequests()} },
		},
		{
			name: "tcp-slow-readers", records: func(config) map[string]string { return withVictim(headless("amp", "big", 3000)) }, victimNet: "tcp",
			attack: func(c config) attack {
				return slowReaders{clients: c.tcpClients, queries: c.tcpPipeline, query: largeQuery(bigName)}
			},
		},
		{
			name: "tcp-conn-flood", records: func(config) map[string]string { return withVictim() }, victimNet: "tcp",
			attack: func(c config) attack { return connFlood{conns: c.tcpConns} },
		},
	}
}

// lockstep is c.workers attackers, each sending its next query when the
// last was answered or timed out: the most work a few clients can keep
// skydns busy with.
func (c config) lockstep(query func(int) []byte) attack {
	return flood{workers: c.workers, timeout: c.attackTimeout, query: query}
}

// one is the same query every time.
func one(name string, bufsize uint16, opcode int) func(int) []byte {
	q := packed(name, dns.TypeA, bufsize, opcode)
	return func(int) []byte { return q }
}

// alternate takes turns between queries.
func alternate(queries ...[]byte) func(int) []byte {
	return func(n int) []byte { return queries[n%len(queries)] }
}

// randomNames are names outside the zone no cache has seen, with the
// largest EDNS0 buffer.
func randomNames(opcode int, qtype uint16) func(int) []byte {
	salt := rand.Uint64()
	return func(n int) []byte {
		return packed(fmt.Sprintf("r%d-%x.example.com.", n, salt), qtype, udpSize, opcode)
	}
}

// oddRequests take turns: NOTIFY and UPDATE for names outside the zone,
// and AXFR, none of which a cluster DNS should serve or forward.
func oddRequests() func(int) []byte {
	notify, update, axfr := randomNames(dns.OpcodeNotify, dns.TypeSOA), randomNames(dns.OpcodeUpdate, dns.TypeSOA), randomNames(dns.OpcodeQuery, dns.TypeAXFR)
	return func(n int) []byte { return [](func(int) []byte){notify, update, axfr}[n%3](n) }
}
