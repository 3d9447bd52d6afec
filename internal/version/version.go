// Package version carries the build's version, set by the Makefile with
// -ldflags "-X github.com/skypod/skypod/internal/version.Version=...".
package version

// Version is the git description of the build, or "dev".
var Version = "dev"
