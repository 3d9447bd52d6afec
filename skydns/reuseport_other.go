//go:build !unix

package skydns

import (
	"errors"
	"syscall"
)

// unixSockets is false: UDP is read and written one datagram at a time
// through the net package, without packet info, as miekg/dns's server
// does on these systems.
const unixSockets = false

// reusePort refuses: several sockets on one port need SO_REUSEPORT.
func reusePort(_, _ string, _ syscall.RawConn) error {
	return errors.New("several UDP sockets need SO_REUSEPORT: use --udp-sockets=1 here")
}
