//go:build !linux

package healthz

import "errors"

// becomeSubreaper: child subreapers are Linux's; elsewhere exec-healthz
// reaps only what is reparented to it as PID 1.
func becomeSubreaper() error { return errors.New("child subreapers exist only on Linux") }
