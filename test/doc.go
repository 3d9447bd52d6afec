// Package test holds the integration tests: they start real things (etcd,
// a kube-apiserver, the project's binaries, dig and nslookup,
// docker-compose) and so sit behind the "integration" build tag. Without
// the tag this package is empty, and `go test ./...` runs the unit tests
// alone, with nothing but Go installed.
//
// `make test` builds what they need and runs them with -tags integration;
// harness/ starts the real things and compiles without the tag.
package test
