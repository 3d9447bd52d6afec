//go:build !linux

package netcap

// State says what RaiseBindService found and did.
type State string

// NotPermitted: file capabilities are Linux's.
const NotPermitted State = "not-permitted"

// RaiseBindService does nothing off Linux.
func RaiseBindService() (State, error) { return NotPermitted, nil }
