# Fresh-machine entry points: `make demo` and `make test`. Both create and reuse .venv/.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: system-deps venv install lint test test-unit test-contract test-integration test-chaos crds demo bench clean \
	kube-apiserver

venv: $(STAMP)

# Three distributions, installed editable: the operator (with the test tools), and the Twilio emulator and
# the playground (embedded Kubernetes API, S3 helper, demo), which are tools and never ship in its wheel.
TOOLS := tests/tools/emulator tests/tools/playground

$(STAMP): pyproject.toml $(addsuffix /pyproject.toml,$(TOOLS))
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' $(addprefix -e ,$(TOOLS))
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests use, installed once, as root, on a fresh machine: promtool (package
# prometheus) for the alert-rule and scrape tests; ffprobe/ffmpeg (package ffmpeg) to decode the emulator's
# media with an independent decoder.
SYSTEM_TOOLS := promtool:prometheus ffprobe:ffmpeg ffmpeg:ffmpeg
system-deps:
	@missing=$$(for pair in $(SYSTEM_TOOLS); do command -v $${pair%%:*} >/dev/null 2>&1 || echo $${pair##*:}; done | sort -u); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "missing Debian packages: $$missing (install them as root)" >&2; exit 1; fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check --no-cache operator tests
	$(BIN)/ruff format --no-cache --check operator tests
	$(BIN)/mypy
	$(BIN)/lint-imports

# With Go on PATH the real tier's kube-apiserver is built (or found current) first, in the open; pytest then
# uses it (tests/real_kube.py). A build that fails stops the run only under CI=true; elsewhere the tier's
# tests are skipped with the reason, as they are without Go.
test: $(STAMP) system-deps
	@if command -v $(GO) >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory kube-apiserver || [ "$$CI" != true ]; \
	else echo "go is not on PATH: the real kube-apiserver tier will be skipped (or fail under CI=true)"; fi
	$(BIN)/pytest -q -p no:cacheprovider

test-unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test-contract: $(STAMP)
	$(BIN)/pytest -q tests/contract

test-integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

# Fault suites in full (make test runs a reduced, bounded subset of tests/chaos).
test-chaos: $(STAMP)
	CHAOS_LEVEL=full $(BIN)/pytest -q -p no:cacheprovider tests/chaos

# Benchmarks: JSON per scenario and SUMMARY.md under bench-results/; never pass/fail on timing.
# BENCH_ARGS passes options through, e.g. BENCH_ARGS='--with-10k' or BENCH_ARGS='--sizes 100'.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python tests/bench/run.py $(BENCH_ARGS)

CHART_CRDS := charts/twilio-video-operator/files/crds

crds: $(STAMP)
	$(BIN)/python -m twilio_video_operator.crdgen crds --reference docs/crd-reference.md
	rm -f $(CHART_CRDS)/*.yaml
	cp crds/*.yaml $(CHART_CRDS)/

# A real control plane for tests/realkube (docs/real-kubernetes.md): etcd and the kube-apiserver of
# k8s.io/kubernetes in one Go program, tests/kube-apiserver/. A file target, so it is rebuilt only when
# the program's sources or module sums change. The version stamped into /version is the one of the
# k8s.io/kubernetes module in its go.mod (a plain `go build` would report v0.0.0-master).
GO ?= go
KUBE_APISERVER_SRC := tests/kube-apiserver
KUBE_APISERVER := .cache/kube-apiserver/kube-apiserver

# The Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule), so that the chart's monitoring objects
# are applied to the real server as they would be to a cluster running it. They come from the project's
# module on the Go module proxy, which serves its v0.85.0 (newer versions answer 403 "not available").
PROMETHEUS_OPERATOR := github.com/prometheus-operator/prometheus-operator@v0.85.0
MONITORING_CRDS := .cache/kube-apiserver/crds
MONITORING_CRDS_STAMP := $(MONITORING_CRDS)/.$(notdir $(PROMETHEUS_OPERATOR))

kube-apiserver: $(KUBE_APISERVER) $(MONITORING_CRDS_STAMP)

$(MONITORING_CRDS_STAMP):
	@mkdir -p $(@D)
	$(GO) mod download $(PROMETHEUS_OPERATOR)
	src=$$($(GO) env GOMODCACHE)/$(PROMETHEUS_OPERATOR)/example/prometheus-operator-crd && \
	  install -m 644 $$src/monitoring.coreos.com_servicemonitors.yaml \
	    $$src/monitoring.coreos.com_prometheusrules.yaml $(@D)/
	touch $@

$(KUBE_APISERVER): $(KUBE_APISERVER_SRC)/go.mod $(KUBE_APISERVER_SRC)/go.sum $(wildcard $(KUBE_APISERVER_SRC)/*.go)
	@mkdir -p $(@D)
	cd $(KUBE_APISERVER_SRC) && \
	  version=$$($(GO) list -m -f '{{.Version}}' k8s.io/kubernetes) && minor=$${version#v1.} && \
	  pkg=k8s.io/component-base/version && \
	  $(GO) build -trimpath -buildvcs=false -o $(CURDIR)/$@.tmp \
	    -ldflags "-s -w -X $$pkg.gitVersion=$$version -X $$pkg.gitMajor=1 -X $$pkg.gitMinor=$${minor%%.*} \
	      -X $$pkg.gitTreeState=clean" .
	mv $@.tmp $@

demo: $(STAMP)
	$(BIN)/twilio-video-demo

clean:
	rm -rf $(VENV) .dev .mypy_cache .ruff_cache .pytest_cache
