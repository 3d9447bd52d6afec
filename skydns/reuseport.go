package skydns

import (
	"context"
	"fmt"
	"net"
	"strconv"
)

// listenUDP binds n UDP sockets on addr. One is bound as before; several
// share the address through SO_REUSEPORT, and the kernel spreads clients
// over them by a hash of their address and port, so one client's queries
// stay on one socket. The first bind fixes the port, which the others
// take (addr's port may be 0 in tests). Only processes of the same user
// can join the group; on an error none stays open.
func listenUDP(ctx context.Context, addr string, n int) ([]*net.UDPConn, error) {
	if n <= 1 {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, err
		}
		return []*net.UDPConn{pc.(*net.UDPConn)}, nil
	}
	lc := net.ListenConfig{Control: reusePort}
	var conns []*net.UDPConn
	for i := range n {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			closeAll(conns, nil)
			return nil, fmt.Errorf("socket %d of %d: %w", i+1, n, err)
		}
		conns = append(conns, pc.(*net.UDPConn))
		if i == 0 {
			host, _, _ := net.SplitHostPort(addr)
			addr = net.JoinHostPort(host, strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port))
		}
	}
	return conns, nil
}
