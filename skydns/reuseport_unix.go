//go:build unix

package skydns

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// unixSockets: x/net reads and writes in batches here (one datagram at a
// time on systems other than Linux), and packet info names a reply's
// source.
const unixSockets = true

// reusePort sets SO_REUSEPORT before the bind.
func reusePort(_, _ string, c syscall.RawConn) error {
	var sockErr error
	if err := c.Control(func(fd uintptr) {
		sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return sockErr
}
