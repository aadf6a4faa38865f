# Hermod: see README.md. Every target works from a clean clone with Go.
SHELL := /bin/bash
# deploy/helm/chartcheck has its own go.work (its Kubernetes dependencies stay
# out of the services' builds); from its directory the go command uses it.
MODULES := shared services/api services/router services/deliverer services/agent services/hermod services/hermodctl deploy/helm/chartcheck
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/hermodhq/hermod/shared/version.Version=$(VERSION)
GOFLAGS_TEST ?= -race -count=1 -timeout 25m
# Where `go install` puts programs: GOBIN when set, else the bin directory
# of GOPATH's first entry. Evaluated only when used.
GOBIN_DIR = $(or $(shell go env GOBIN),$(firstword $(subst :, ,$(shell go env GOPATH)))/bin)
STATICCHECK ?= $(GOBIN_DIR)/staticcheck

.PHONY: build run test test-faults test-short lint bench bench-external bench-filters fuzz screenshots clean tools images test-compose compose-plugin helm test-helm promtool test-monitoring

# A real Alertmanager for the end-to-end test of the alertmanager format
# (built from its Go module; newer versions embed a UI bundle the module
# does not ship).
ALERTMANAGER_VERSION ?= v0.28.1

build:
	@mkdir -p bin
	cd services/api && go build -ldflags '$(LDFLAGS)' -o ../../bin/hermod-api ./cmd/hermod-api
	cd services/router && go build -ldflags '$(LDFLAGS)' -o ../../bin/hermod-router ./cmd/hermod-router
	cd services/deliverer && go build -ldflags '$(LDFLAGS)' -o ../../bin/hermod-deliverer ./cmd/hermod-deliverer
	cd services/agent && go build -ldflags '$(LDFLAGS)' -o ../../bin/hermod-agent ./cmd/hermod-agent
	cd services/hermod && go build -ldflags '$(LDFLAGS)' -o ../../bin/hermod ./cmd/hermod
	cd services/hermodctl && go build -ldflags '$(LDFLAGS)' -o ../../bin/hermodctl ./cmd/hermodctl

run: build
	./bin/hermod

# The nats-server the external benchmark runs as a process: the version
# Hermod embeds (shared/go.mod). Evaluated only when used.
NATS_SERVER_VERSION = $(shell cd shared && go list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2)

# Tools the tests and benchmarks run beside Hermod, installed once where
# `go install` puts them (GOBIN, else GOPATH/bin); the tests look there first.
tools:
	@command -v alertmanager >/dev/null 2>&1 || test -x "$(GOBIN_DIR)/alertmanager" || \
		go install github.com/prometheus/alertmanager/cmd/alertmanager@$(ALERTMANAGER_VERSION)
	@v='$(NATS_SERVER_VERSION)'; test "$$($(GOBIN_DIR)/nats-server --version 2>/dev/null)" = "nats-server: $$v" || \
		go install github.com/nats-io/nats-server/v2@$$v

# Container images from local files only (no registry): static binaries on
# scratch, nats-server at the embedded version, Redis in a Debian base made
# with debootstrap (deploy/README.md).
images:
	./scripts/images.sh

# Docker Compose v2 as a CLI plugin, built from its Go module when the
# docker CLI has none (scripts/compose-plugin.sh).
compose-plugin:
	./scripts/compose-plugin.sh

# `docker compose up` for real: the stack of deploy/compose with the images
# `make images` built, driven from the host (services/hermod/deploytest).
test-compose: images compose-plugin
	cd services/hermod && go test -tags compose -count=1 -v -timeout 20m ./deploytest/

# helm for checking the chart, built once from its Go module into a cache
# directory named for its version (minutes the first time, then nothing).
HELM_VERSION ?= v3.22.0
HELM_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/hermod/helm-$(HELM_VERSION)
HELM = $(HELM_DIR)/helm

helm:
	@test -x '$(HELM)' || GOBIN='$(HELM_DIR)' go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

# The Helm chart (deploy/helm): helm lint and helm template for several value
# sets, every object decoded strictly into the Kubernetes API types and checked.
test-helm: helm
	cd deploy/helm/chartcheck && HERMOD_HELM='$(HELM)' go test -race -count=1 -tags helm ./...

# promtool for checking the alert rules, built once from its Go module into a
# cache directory named for its version, like helm above.
PROMTOOL_VERSION ?= v0.316.0
PROMTOOL_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/hermod/promtool-$(PROMTOOL_VERSION)
PROMTOOL = $(PROMTOOL_DIR)/promtool

promtool:
	@test -x '$(PROMTOOL)' || GOBIN='$(PROMTOOL_DIR)' go install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)

# The alert rules (deploy/monitoring): promtool checks their syntax and
# expressions, then runs their unit tests (input series, expected alerts).
# That every metric they and the dashboard use exists is a test of make test
# (services/hermod, TestE2EMonitoringMetricsExported).
test-monitoring: promtool
	'$(PROMTOOL)' check rules deploy/monitoring/hermod.rules.yaml
	cd deploy/monitoring && '$(PROMTOOL)' test rules hermod.rules.test.yaml

# Every test of every module (the end-to-end tests build the binaries first).
test: build tools
	@GOFLAGS_TEST='$(GOFLAGS_TEST)' ./scripts/test.sh $(MODULES)

# The fault-injection suite (docs/reliability.md): Hermod's built binaries,
# nats-server and redis-server as separate processes, killed and restarted
# while thousands of deliveries flow. Its files carry the build tag faults,
# so `make test` leaves it out; lint vets it with the tag.
test-faults: build tools
	cd services/hermod && go test -tags faults -race -count=1 -v -timeout 20m ./faults/

lint:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	@set -e; for m in $(MODULES); do (cd $$m && go vet ./... && $(STATICCHECK) ./...); done
	@cd services/hermod && go vet -tags faults ./faults/ && $(STATICCHECK) -tags faults ./faults/
	@cd services/hermod && go vet -tags compose ./deploytest/ && $(STATICCHECK) -tags compose ./deploytest/
	@cd deploy/helm/chartcheck && go vet -tags helm ./... && $(STATICCHECK) -tags helm ./...

# The external benchmark: every part its own process on 127.0.0.1, both
# layouts; prints markdown tables for docs/benchmarks.md.
BENCH_EXTERNAL = cd services/hermod && go test -run '^$$' -bench '^BenchmarkExternal$$' -benchtime 1x -timeout 30m ./bench/

# The in-process benchmarks, then the external one, then the control
# plane's, then matching with 10,000 filter expressions.
bench: build tools
	cd services/hermod && go test -run '^$$' -bench '^BenchmarkInProcess' -benchtime 1x -timeout 30m ./bench/
	$(BENCH_EXTERNAL)
	cd services/api && go test -run '^$$' -bench BenchmarkAgentHeartbeat -benchtime 200x ./controlplane
	$(BENCH_FILTERS)

# Matching with 10,000 webhooks that each carry a filter expression:
# compiling them, then routing one event (docs/benchmarks.md).
BENCH_FILTERS = cd shared && go test -run '^$$' -bench '^BenchmarkMatchFilterExpressions10000$$/compile' -benchtime 2x ./matching && \
	go test -run '^$$' -bench '^BenchmarkMatchFilterExpressions10000$$/(every|spread|labels)' -benchtime 3s -benchmem ./matching

# The filter expression benchmark alone.
bench-filters:
	$(BENCH_FILTERS)

# The external benchmark alone.
bench-external: build tools
	$(BENCH_EXTERNAL)

# -fuzzminimizetime keeps input minimisation from eating the whole run.
FUZZ = go test -run '^$$' -fuzztime 30s -fuzzminimizetime 2s -fuzz
fuzz:
	cd shared && $(FUZZ) '^FuzzDecodeBody$$' ./webhooks
	cd shared && $(FUZZ) '^FuzzApplyUpdate$$' ./webhooks
	cd shared && $(FUZZ) '^FuzzCompile$$' ./filterexpr
	cd shared && $(FUZZ) '^FuzzParseEnvelope$$' ./matching
	cd shared && $(FUZZ) '^FuzzSetMatch$$' ./matching
	cd shared && $(FUZZ) '^FuzzRender$$' ./formats
	cd shared && $(FUZZ) '^FuzzVerify$$' ./signing
	cd shared && $(FUZZ) '^FuzzCanonicalLabels$$' ./webhooks
	cd services/api && $(FUZZ) '^FuzzDecodeEvent$$' .
	cd services/api && $(FUZZ) '^FuzzParseReplay$$' .

# Browser screenshots of the Webhooks page into docs/images (the README shows them).
screenshots: build
	cd services/hermod && HERMOD_SCREENSHOTS_DIR=$(CURDIR)/docs/images go test -count=1 -run '^TestBrowserWebhooksPage$$' .

clean:
	rm -rf bin data
