# minikubelet — run it: `make up`; test it: `make test`. See README.md.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.1.0-dev)
LDFLAGS := -X github.com/minikubelet/minikubelet/pkg/version.Version=$(VERSION)
# Build tags of the agent (test/testbed.MinikubeletTags says why).
GOTAGS := grpcnotrace
# curl, bind9-dnsutils and netcat-openbsd: the conformance images' agnhost takes them from the machine.
APT_PACKAGES := containerd runc containernetworking-plugins busybox-static iptables iproute2 systemd dbus curl libseccomp-dev conmon \
	bind9-dnsutils netcat-openbsd
E2E_TIMEOUT ?= 40m
# The test bed's container runtime (`make up`, `make test`, `make bench`): containerd
# (Debian's 1.6) or containerd2 (2.x, built from test/tools/containerd2). make test runs
# the whole e2e suite on RUNTIME and E2E_OTHER_TESTS on the other one.
RUNTIME ?= $(or $(MINIKUBELET_RUNTIME),containerd)
OTHER_RUNTIME := $(if $(filter containerd2,$(RUNTIME)),containerd,containerd2)
export MINIKUBELET_RUNTIME := $(RUNTIME)
E2E_OTHER_TESTS ?= TestPodLifecycle|TestStatusTransitions|TestProbe|TestReliability|TestRuntime|TestResourcesImageGC|TestStorageBlock
# ... but not the two long reliability runs about the API server (churn under throttling,
# an API server outage): nothing in them depends on the runtime.
E2E_OTHER_SKIP ?= TestReliabilityChurnThrottled|TestReliabilityAPIServerOutage
# The tests that keep the 2 cores busy on their own (three clusters at once, 100 pods
# churning): make test runs them first, alone, and the rest of the suite beside the other
# runtime's suite and the example. make e2e runs them all, E2E_RUN/E2E_SKIP choose.
E2E_HEAVY ?= TestClusters|TestReliabilityChurnThrottled

.PHONY: all build deps tools up down cluster cluster-down test test-long test-upstream unit e2e e2e-rest e2e-other examples lint fuzz clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags "$(GOTAGS)" -ldflags "$(LDFLAGS)" -o bin/minikubelet ./cmd/minikubelet

# Installs what the test bed needs (Debian packages, as root) and builds the pinned upstream
# components once into ~/.cache/minikubelet (rebuilt only when test/tools/go.mod changes).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi
	@# Debian's containerd package may start a system instance; the test bed runs its own.
	@hack/build-tools.sh >/dev/null
	@hack/build-metrics-server.sh >/dev/null
	@hack/build-local-path-provisioner.sh >/dev/null
	@hack/build-csi-attacher.sh >/dev/null
	@hack/build-containerd2.sh >/dev/null

tools: deps

up: deps build
	$(GO) run ./test/cmd/testbed up

down:
	$(GO) run ./test/cmd/testbed down

# A kind-style cluster on this machine, made by kubeadm: NODES (3: one control plane, the
# rest workers), UPSTREAM_NODES (0: workers on the pinned upstream kubelet instead of
# minikubelet). README "A cluster of several nodes".
cluster: deps
	$(GO) run ./test/cmd/cluster up

cluster-down:
	$(GO) run ./test/cmd/cluster down

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd test/tools && $(GO) vet ./etcd
	cd test/csidriver && GOWORK=off $(GO) vet ./...

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test/e2e)
	cd test/csidriver && GOWORK=off $(GO) test -count=1 ./...

e2e: deps
	@mkdir -p _output
	$(GO) test -count=1 -timeout $(E2E_TIMEOUT) -v $(if $(E2E_RUN),-run '$(E2E_RUN)') $(if $(E2E_SKIP),-skip '$(E2E_SKIP)') ./test/e2e/ 2>&1 | tee _output/e2e$(E2E_LOG).log | grep --line-buffered -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|^\s+\S+_test.go:' ; \
	  rc=$${PIPESTATUS[0]}; if [ $$rc -ne 0 ]; then echo "--- e2e failed; last lines of _output/e2e$(E2E_LOG).log:"; tail -n 300 _output/e2e$(E2E_LOG).log; fi; exit $$rc

# The main suite less E2E_HEAVY (make test runs it beside e2e-other); lines prefixed [rest].
e2e-rest: deps
	@set -o pipefail; $(MAKE) --no-print-directory e2e E2E_SKIP='$(E2E_HEAVY)' E2E_LOG=-rest 2>&1 | sed -u 's/^/[rest] /'

# The named suites again on the other runtime (lifecycle, status transitions, probes,
# reliability, runtime features, image GC (the sandbox image pinned on 2.x only), raw block
# volumes (devices through the runtime); about 9 minutes).
e2e-other: deps
	@mkdir -p _output
	MINIKUBELET_RUNTIME=$(OTHER_RUNTIME) $(GO) test -count=1 -timeout $(E2E_TIMEOUT) -v -run '$(E2E_OTHER_TESTS)' -skip '$(E2E_OTHER_SKIP)' ./test/e2e/ 2>&1 | tee _output/e2e-$(OTHER_RUNTIME).log | grep --line-buffered -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|^\s+\S+_test.go:' | sed -u 's/^/[$(OTHER_RUNTIME)] /' ; \
	  rc=$${PIPESTATUS[0]}; if [ $$rc -ne 0 ]; then echo "[$(OTHER_RUNTIME)] --- e2e on $(OTHER_RUNTIME) failed; last lines of _output/e2e-$(OTHER_RUNTIME).log:"; tail -n 300 _output/e2e-$(OTHER_RUNTIME).log | sed 's/^/[$(OTHER_RUNTIME)] /'; fi; exit $$rc

# E2E_HEAVY alone first; then the rest of the main suite beside the other runtime's suite
# and, after it, the example (each on a bed of its own): 37 minutes, against 45 one after
# the other. With everything side by side the CPU stayed 99 % busy, a reader starved of it
# made a shaper look twice as fast, and a graceful deletion took 11 s; the rest of the main
# suite leaves the CPU 50-90 % idle.
test: deps lint unit
	@mkdir -p _output
	$(MAKE) e2e E2E_RUN='$(E2E_HEAVY)' E2E_LOG=-heavy
	$(MAKE) -j2 e2e-rest e2e-other examples

# The test kit's example (examples/crashwatch: its own module, using package kit of this
# tree): a controller tested on a kit cluster against a crash loop and a failing probe.
examples: deps
	@mkdir -p _output
	cd examples/crashwatch && $(GO) vet ./... && $(GO) test -count=1 -timeout 15m -v ./... 2>&1 | tee ../../_output/examples.log | grep --line-buffered -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|^\s+\S+_test.go:|cluster up' | sed -u 's/^/[examples] /' ; \
	  rc=$${PIPESTATUS[0]}; if [ $$rc -ne 0 ]; then echo "[examples] --- examples failed; last lines of _output/examples.log:"; tail -n 200 ../../_output/examples.log | sed 's/^/[examples] /'; fi; exit $$rc

# The long reliability runs: 100 pods churning for 10 minutes on a throttled node
# (RSS, goroutines, status coalescing; TestReliabilityChurnThrottled runs 60 s in `make
# test`). About 13 minutes.
test-long: deps
	@mkdir -p _output
	MINIKUBELET_CHURN_DURATION=$${MINIKUBELET_CHURN_DURATION:-10m} $(GO) test -count=1 -timeout 30m -v -run 'TestReliabilityChurnThrottled' ./test/e2e/ 2>&1 | tee _output/e2e-long.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|^\s+\S+_test.go:' ; exit $${PIPESTATUS[0]}

# The status-transition, DNS, stats, debug, storage, cgroup, resize and eviction suites against the pinned upstream kubelet v1.37.2 instead of
# minikubelet (differences: docs/differences.md).
test-upstream: deps
	@mkdir -p _output
	MINIKUBELET_E2E_AGENT=upstream $(GO) test -count=1 -timeout $(E2E_TIMEOUT) -v -run 'TestStatusTransitions|TestDNS|TestObserveStats|TestObserveDebug|TestStorage|TestResourcesCgroups|TestResourcesResize|TestEviction' ./test/e2e/ 2>&1 | tee _output/e2e-upstream.log | grep -E '^(=== RUN|--- |    --- |PASS|FAIL|ok|panic)|^\s+\S+_test.go:' ; exit $${PIPESTATUS[0]}

fuzz:
	$(GO) test ./config -run '^$$' -fuzz FuzzParseTaint -fuzztime 20s
	$(GO) test ./pkg/cri -run '^$$' -fuzz FuzzExpand -fuzztime 20s
	$(GO) test ./pkg/volume -run '^$$' -fuzz FuzzSubPath -fuzztime 20s
	$(GO) test ./pkg/cri -run '^$$' -fuzz FuzzTranslate -fuzztime 20s
	$(GO) test ./pkg/cri -run '^$$' -fuzz FuzzParseLogLine -fuzztime 20s
	$(GO) test ./pkg/kubelet/server -run '^$$' -fuzz FuzzParseLogOptions -fuzztime 20s
	$(GO) test ./pkg/kubelet/server -run '^$$' -fuzz FuzzRequestAttributes -fuzztime 20s
	$(GO) test ./pkg/kubelet/server -run '^$$' -fuzz FuzzNodeLogQuery -fuzztime 20s
	$(GO) test ./pkg/kubelet/dns -run '^$$' -fuzz FuzzPodDNS -fuzztime 20s

clean:
	rm -rf bin _output

# The same workloads against minikubelet and the upstream kubelet v1.37.2, agents alternated,
# in two profiles (bound; ordinary: scheduler, token volume, etcd fsync), one test bed each;
# report in bench/results/<date>.{md,json}. BENCH_ROUNDS (3), BENCH_LARGE_ROUNDS (1: the
# 100-pod batch and the 250-pod node), BENCH_PROFILES (bound,ordinary), BENCH_IDLE (60s),
# BENCH_MAXPODS (250), BENCH_BATCHES (30,100); README "Benchmarks". About 31 minutes on 2
# cores (53 with BENCH_LARGE_ROUNDS=3).
.PHONY: bench
bench: deps build
	$(GO) run ./test/cmd/bench

# Upstream's conformance suite (the pinned e2e.test) against a kubeadm cluster of
# minikubelet nodes; not part of `make test` (the first build of e2e.test takes ~30 min).
# CONFORMANCE_ARGS, e.g. -focus '\[sig-storage\].*\[Conformance\]' -procs 2 -keep.
.PHONY: conformance
conformance: deps
	$(GO) run ./test/cmd/conformance -bin "$$(hack/build-conformance.sh)" $(CONFORMANCE_ARGS)
