//go:build linux

// Package netcap lets skydns bind port 53 as a non-root user on a runtime
// that keeps the kernel's net.ipv4.ip_unprivileged_port_start at 1024.
//
// The skydns image gives its binary the file capability
// cap_net_bind_service in the permitted set only ("=p", not "=ep"). A file
// capability with the effective bit makes the kernel refuse to exec the
// binary at all where the capability is not in the bounding set (a
// securityContext that drops ALL and adds nothing): "exec: operation not
// permitted", even for a skydns on port 1053 that needs no capability. With
// the permitted bit alone the binary starts anywhere, and RaiseBindService
// makes the capability effective where the runtime allowed it.
package netcap

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// State says what RaiseBindService found and did.
type State string

const (
	Raised       State = "raised"        // It was permitted and is now effective.
	Effective    State = "effective"     // It already was (root, or an ambient capability).
	NotPermitted State = "not-permitted" // Neither: binding below the unprivileged port start fails unless the sysctl allows it.
)

// RaiseBindService makes CAP_NET_BIND_SERVICE effective in every thread of
// the process if it is permitted. Capabilities are per thread on Linux and
// the Go runtime runs many, so the capset goes to all of them
// (syscall.AllThreadsSyscall, which needs a binary built without cgo, as
// the project's are).
func RaiseBindService() (State, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return NotPermitted, err
	}
	const bit = uint32(1) << unix.CAP_NET_BIND_SERVICE // Below 32: the first word.
	switch {
	case data[0].Effective&bit != 0:
		return Effective, nil
	case data[0].Permitted&bit == 0:
		return NotPermitted, nil
	}
	data[0].Effective |= bit
	_, _, errno := syscall.AllThreadsSyscall(unix.SYS_CAPSET,
		uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	if errno != 0 {
		return NotPermitted, errno
	}
	return Raised, nil
}
