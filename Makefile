# skypod: kube2sky + skydns + etcd + exec-healthz, the Kubernetes 1.2 DNS pod.
#   make up      the DNS pod on loopback for a real kube-apiserver, with demo objects (Ctrl-C stops it)
#   make up-ha   the HA shape of manifests/ha on loopback: three etcd members (mTLS), two kube2skys, three skydns
#   make build   static binaries in bin/
#   make images  FROM scratch images of the four containers
#   make test-unit  vet, gofmt check, the unit tests: Go only, seconds
#   make test    vet, gofmt check, every unit and integration test, then make fuzz
#   make fuzz    each fuzz target for a fixed number of inputs (make fuzz FUZZSCALE=10: ten times as many)
#   make bench-dns   dnsperf: skydns against a fixed-answer responder
#   make bench-kube2sky  kube2sky with 10,000 services in a real apiserver
#   make bench-ha    propagation in the HA shape: three etcd members against one
#   make bench-attack    skydns under the attacks of issue #9 (BEFORE=<older skydns> compares)
#   make bench   skydns beside CoreDNS and a fixed responder: writes docs/benchmarks.md (BENCH_SIZES=1000 for a quick run)
#   make check   vet, gofmt check, lint
#   make lint    golangci-lint (pinned, built once) with .golangci.yml
#   make kustomize  the pinned kustomize (built once), for the overlays of manifests/

GO        ?= go
ETCD_VERSION := v3.6.6
CACHE     := $(CURDIR)/.cache
ETCD      := $(CACHE)/etcd-$(ETCD_VERSION)
ETCDCTL   := $(CACHE)/etcdctl-$(ETCD_VERSION)
KUBE_VERSION := v1.34.3
APISERVER := $(CACHE)/kube-apiserver-$(KUBE_VERSION)
COREDNS_VERSION := v1.15.0
COREDNS   := $(CACHE)/coredns-$(COREDNS_VERSION)
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(CACHE)/golangci-lint-$(GOLANGCI_LINT_VERSION)
KUSTOMIZE_VERSION := v5.8.1
KUSTOMIZE := $(CACHE)/kustomize-$(KUSTOMIZE_VERSION)
VERSION   := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/skypod/skypod/internal/version.Version=$(VERSION)
GOTESTFLAGS ?= -v
# The build tag of the tests that start real things (test/*_test.go).
INTEGRATION := integration
# The race detector needs cgo, so a C compiler; Go alone turns cgo off.
RACE       = $(if $(filter 1,$(shell $(GO) env CGO_ENABLED 2>/dev/null)),-race)
# Debian packages the tests drive: dig, nslookup and delv (dnsutils), dnsperf,
# busybox, dnssec-keygen (bind9-utils).
APT_PACKAGES := dnsutils dnsperf busybox-static openssl libcap2-bin bind9-utils

.PHONY: build test test-unit fuzz check vet fmt-check deps etcd apiserver coredns bench bench-dns bench-kube2sky bench-ha bench-attack images skydns-image compose-up compose-down up up-ha down docs clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/skydns ./cmd/kube2sky ./cmd/exec-healthz ./test/bench/fixedresponder

# etcd is built from the Go module proxy at a pinned version, once.
etcd: $(ETCD) $(ETCDCTL)
$(ETCD): tools/etcd/go.mod tools/etcd/go.sum
	@echo ">> building etcd $(ETCD_VERSION) (about 2 minutes, once)"
	cd tools/etcd && CGO_ENABLED=0 $(GO) build -o $(ETCD) go.etcd.io/etcd/server/v3
$(ETCDCTL): tools/etcd/go.mod tools/etcd/go.sum
	@echo ">> building etcdctl $(ETCD_VERSION) (once)"
	cd tools/etcd && CGO_ENABLED=0 $(GO) build -o $(ETCDCTL) go.etcd.io/etcd/etcdctl/v3

# kube-apiserver likewise, from k8s.io/kubernetes at the pinned version
# (about 10 minutes on 2 cores with a cold cache, once).
apiserver: $(APISERVER)
$(APISERVER): tools/kube-apiserver/go.mod tools/kube-apiserver/go.sum tools/kube-apiserver/main.go
	@echo ">> building kube-apiserver $(KUBE_VERSION) (about 10 minutes, once)"
	cd tools/kube-apiserver && CGO_ENABLED=0 $(GO) build -o $(APISERVER) .

# CoreDNS likewise, for make bench only: go install at the pinned version
# (the module proxy's checksum database pins its content), a few minutes
# on 2 cores, once.
coredns: $(COREDNS)
$(COREDNS):
	@echo ">> building CoreDNS $(COREDNS_VERSION) (a few minutes, once)"
	tmp=$$(mktemp -d) && GOBIN=$$tmp CGO_ENABLED=0 $(GO) install github.com/coredns/coredns@$(COREDNS_VERSION) && mv $$tmp/coredns $@ && rmdir $$tmp

# golangci-lint likewise, from the module proxy at the version pinned in
# tools/golangci-lint/go.mod (about 5 minutes on 2 cores with a cold cache, once).
.PHONY: lint golangci-lint
golangci-lint: $(GOLANGCI_LINT)
$(GOLANGCI_LINT): tools/golangci-lint/go.mod tools/golangci-lint/go.sum
	@echo ">> building golangci-lint $(GOLANGCI_LINT_VERSION) (about 5 minutes, once)"
	cd tools/golangci-lint && CGO_ENABLED=0 $(GO) build -o $(GOLANGCI_LINT) github.com/golangci/golangci-lint/v2/cmd/golangci-lint

# kustomize likewise, for the overlays of manifests/ (about 2 minutes on 2
# cores, once). go install checks the module against the checksum database;
# GOBIN is a scratch directory so the binary lands under its pinned name.
# v5.8.1 is the newest that builds with Go 1.26 (v5.8.3 needs 1.27).
.PHONY: kustomize
kustomize: $(KUSTOMIZE)
$(KUSTOMIZE):
	@echo ">> building kustomize $(KUSTOMIZE_VERSION) (about 2 minutes, once)"
	@mkdir -p $(CACHE)
	tmp=$$(mktemp -d) && GOBIN=$$tmp CGO_ENABLED=0 $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION) && \
		mv $$tmp/kustomize $(KUSTOMIZE) && rmdir $$tmp

# Installs the Debian packages the tests need when any is missing.
# promtool (TestMonitoring) comes only with Debian's prometheus, which also
# installs a Prometheus server: it is installed without recommends and,
# where systemd runs, its server stopped and disabled (promtool is all we use).
deps:
	@if ! command -v dig >/dev/null || ! command -v dnsperf >/dev/null || ! command -v nslookup >/dev/null || [ ! -x /bin/busybox ] || ! command -v openssl >/dev/null || ! command -v setcap >/dev/null || ! command -v dnssec-keygen >/dev/null || ! command -v delv >/dev/null; then \
		echo ">> installing $(APT_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi
	@if ! command -v promtool >/dev/null; then \
		echo ">> installing prometheus (for promtool; its server is left stopped)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
		if [ -d /run/systemd/system ]; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi; \
	fi

# Both tiers are vetted: the integration tests in test/ build only with the
# tag, everything else also without it.
vet:
	$(GO) vet ./...
	$(GO) vet -tags $(INTEGRATION) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# The linters and their settings are in .golangci.yml (build tag integration included).
lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...

check: vet fmt-check lint

# The unit tests alone, on a fresh clone with nothing but Go: no packages,
# no etcd or kube-apiserver build, no Docker, no root.
test-unit: vet fmt-check
	@[ -n "$(RACE)" ] || echo ">> cgo is off (Go turns it off without a C compiler): the unit tests run without -race"
	$(GO) test $(RACE) ./...

test: check deps build etcd apiserver kustomize images
	SKYPOD_BIN_DIR=$(CURDIR)/bin SKYPOD_ETCD_BIN=$(ETCD) SKYPOD_APISERVER_BIN=$(APISERVER) SKYPOD_KUSTOMIZE_BIN=$(KUSTOMIZE) $(GO) test -tags $(INTEGRATION) -race -count=1 -timeout 30m $(GOTESTFLAGS) ./...
	@$(MAKE) --no-print-directory fuzz

# Each fuzz target runs for a fixed number of inputs, one go test per
# target (-fuzz takes one at a time); a crasher lands in
# <pkg>/testdata/fuzz/<target>/. Their seeds and those files also run, as
# plain tests, in go test ./... The budget is a count, not a duration:
# with -fuzztime <duration>, Go 1.26's fuzzing coordinator can report its
# own deadline as a failure ("context deadline exceeded", no crasher;
# golang/go#75804, fixed in Go 1.27), which failed CI once. Each count is
# about ten seconds on two idle cores; FUZZSCALE multiplies them all
# (FUZZSCALE=10 for a longer hunt).
FUZZSCALE ?= 1
FUZZ_TARGETS := skydns:FuzzServeDNS:60000 skydns:FuzzPackedEqualsBuilt:60000 skydns:FuzzHasUpperASCII:150000 \
	skydns:FuzzPackedKeyOf:100000 skydns/msg:FuzzUnmarshal:300000 skydns/msg:FuzzKeySegments:400000 \
	skydns/msg:FuzzPathDomain:300000 kube2sky:FuzzRecords:15000
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; execs=$$(( $${rest#*:} * $(FUZZSCALE) )); \
		echo ">> fuzzing $$name (./$$pkg) for $$execs inputs"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $${execs}x ./$$pkg || exit 1; \
	done

# kube2sky against a real apiserver with 10,000 services: initial sync,
# propagation p50/p99, writes of a no-change resync, peak RSS, writes of a
# no-change restart.
bench-kube2sky: deps build etcd apiserver
	SKYPOD_BIN_DIR=$(CURDIR)/bin SKYPOD_ETCD_BIN=$(ETCD) SKYPOD_APISERVER_BIN=$(APISERVER) \
		$(GO) test -tags $(INTEGRATION) -run '^$$' -bench Kube2sky -benchtime 1x -timeout 30m ./test/

# The HA shape (two kube2skys electing a leader, three skydns) on a
# three-member etcd and on a single member, in one run: propagation p50/p99
# of 200 new services, create to a correct answer through every skydns
# (docs/reliability.md, "HA failover"). About a minute.
bench-ha: deps build etcd apiserver
	SKYPOD_BIN_DIR=$(CURDIR)/bin SKYPOD_ETCD_BIN=$(ETCD) SKYPOD_APISERVER_BIN=$(APISERVER) \
		$(GO) test -tags $(INTEGRATION) -run '^$$' -bench HAPropagation -benchtime 1x -timeout 15m ./test/

bench-dns: deps build etcd
	SKYPOD_ETCD_BIN=$(ETCD) BIN_DIR=$(CURDIR)/bin ./test/bench/bench-dns.sh

# skydns (fed by kube2sky from a real apiserver) beside CoreDNS's kubernetes
# and etcd plugins, with and without cache, and a fixed responder, in one
# run: QPS of each query mix as a share of the ceiling, CPU per query,
# latency, RSS and start times per size, propagation under churn. Writes
# docs/benchmarks.md, docs/benchmarks/*.svg and results.json. BENCH_SIZES
# (1000,10000,100000; about 30 minutes on 2 cores) takes BENCH_SIZES=1000
# for a quick run; BENCH_FLAGS passes more flags (go run ./test/bench/compare -h);
# SKYPOD_COREDNS_BIN names a CoreDNS built elsewhere.
bench: deps build etcd apiserver $(if $(SKYPOD_COREDNS_BIN),,coredns)
	SKYPOD_BIN_DIR=$(CURDIR)/bin SKYPOD_ETCD_BIN=$(ETCD) SKYPOD_APISERVER_BIN=$(APISERVER) \
		SKYPOD_COREDNS_BIN=$(or $(SKYPOD_COREDNS_BIN),$(COREDNS)) $(GO) run ./test/bench/compare $(BENCH_FLAGS)

# skydns under the attacks of issue #9 (docs/security.md): a victim's
# in-zone queries alone and under each attack, skydns's peak RSS,
# goroutines and descriptors, CPU per expensive query. BEFORE=<path of an
# older skydns binary> measures it too, in the same run, beside bin/skydns;
# ATTACK_FLAGS passes more flags (-only, -attack, ...: go run
# ./test/bench/attack -h). A few minutes.
bench-attack: build etcd
	SKYPOD_ETCD_BIN=$(ETCD) $(GO) run ./test/bench/attack $(if $(BEFORE),-skydns before=$(BEFORE)) \
		-skydns current=$(CURDIR)/bin/skydns $(ATTACK_FLAGS)

# Images for the manifests and docker-compose.yml, FROM scratch (no registry).
IMAGE_TAG := v0.1.0
images: deps build etcd apiserver
	cp /bin/busybox images/busybox
	cp $(ETCD) images/etcd
	cp $(APISERVER) images/kube-apiserver
	$(MAKE) --no-print-directory skydns-image
	for t in kube2sky exec-healthz; do \
		DOCKER_BUILDKIT=0 docker build -q --target $$t -t skypod/$$t:$(IMAGE_TAG) -f images/Dockerfile . || exit 1; \
	done
	DOCKER_BUILDKIT=0 docker build -q --target etcd -t skypod/etcd:$(ETCD_VERSION) -f images/Dockerfile .
	DOCKER_BUILDKIT=0 docker build -q --target kube-apiserver -t skypod/kube-apiserver:$(KUBE_VERSION) -f images/Dockerfile .
	rm -f images/busybox images/etcd images/kube-apiserver

# skydns's image is imported from a tar rather than built from the
# Dockerfile: the docker build context drops extended attributes, and the
# binary's file capability is one (cap_net_bind_service, permitted only:
# internal/netcap says why). It lets skydns bind :53 as UID 65534 on a
# runtime that keeps net.ipv4.ip_unprivileged_port_start at 1024.
skydns-image: deps build
	rm -rf images/rootfs && mkdir -p images/rootfs
	cp bin/skydns images/rootfs/skydns
	setcap cap_net_bind_service=+p images/rootfs/skydns
	tar --xattrs --xattrs-include=security.capability -C images/rootfs -cf images/skydns-rootfs.tar skydns
	docker import --change 'USER 65534:65534' --change 'ENTRYPOINT ["/skydns"]' \
		images/skydns-rootfs.tar skypod/skydns:$(IMAGE_TAG) >/dev/null
	rm -rf images/rootfs images/skydns-rootfs.tar

# docker-compose.yml as a user runs it, waiting for the first answer. Ports
# from DNS_PORT, API_PORT, HEALTHZ_PORT (1053, 6443, 8080 by default).
compose-up: images
	docker-compose up -d
	@port=$${DNS_PORT:-1053}; for i in $$(seq 120); do \
		dig @127.0.0.1 -p $$port +short +time=1 +tries=1 kubernetes.default.svc.cluster.local | grep -q . && break; \
		[ $$i = 120 ] && { echo "no answer on 127.0.0.1:$$port after 2 minutes: docker-compose logs" >&2; exit 1; }; sleep 1; \
	done; echo "up: dig @127.0.0.1 -p $$port kubernetes.default.svc.cluster.local; stop with make compose-down"

compose-down:
	docker-compose down --timeout 5

up: deps build etcd apiserver
	SKYPOD_ETCD_BIN=$(ETCD) SKYPOD_ETCDCTL_BIN=$(ETCDCTL) SKYPOD_APISERVER_BIN=$(APISERVER) ./scripts/up.sh

up-ha: deps build etcd apiserver
	SKYPOD_ETCD_BIN=$(ETCD) SKYPOD_ETCDCTL_BIN=$(ETCDCTL) SKYPOD_APISERVER_BIN=$(APISERVER) ./scripts/up-ha.sh

down:
	./scripts/down.sh

# The architecture diagram, from its Graphviz source (Debian's graphviz).
docs: docs/architecture.svg
docs/architecture.svg: docs/architecture.dot
	command -v dot >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null)
	dot -Tsvg $< -o $@

clean:
	rm -rf bin
