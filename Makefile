# Tenantry developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

NPM_STAMP := node_modules/.package-lock.json
TOOLS_CACHE ?= $(or $(TENANTRY_TOOLS_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/tenantry/tools)
node_version = $(shell awk '$$1 == "$(1)" { print $$2 }' tools/node/versions)
# Every recipe runs on the pinned Node.js 22 (`make node` installs it); the unit tests also run on 24.
NODE22_BIN := $(TOOLS_CACHE)/node-v$(call node_version,22)/bin
NODE24_BIN := $(TOOLS_CACHE)/node-v$(call node_version,24)/bin
export PATH := $(NODE22_BIN):$(PATH)

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(NODE22_BIN)/node:
	@bash hack/install-node.sh 22 >/dev/null

$(NODE24_BIN)/node:
	@bash hack/install-node.sh 24 >/dev/null

.PHONY: node
node: $(NODE22_BIN)/node $(NODE24_BIN)/node ## Install the pinned Node.js 22 and 24 (tools/node/versions) into the tools cache

$(NPM_STAMP): package.json package-lock.json | $(NODE22_BIN)/node
	npm ci --no-audit --no-fund

.PHONY: deps
deps: $(NPM_STAMP) ## Install the npm dependencies from the lockfile

.PHONY: tools
tools: ## Build (once, then cached) etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, helm, helm-docs, KWOK, promtool and kstatus
	@bash hack/build-tools.sh

.PHONY: chromium
chromium: ## Install Chromium for the browser sign-in tests (Debian's chromium package) if it is missing
	@bash hack/install-chromium.sh

.PHONY: services
services: ## Start local PostgreSQL, RabbitMQ and Redis if they are not running
	@bash hack/ensure-services.sh

.PHONY: cluster-up
cluster-up: deps tools ## Start a private control plane in the background; writes .dev/kubeconfig
	@npx tsx hack/cluster.ts up

.PHONY: cluster-down
cluster-down: ## Stop the control plane started by cluster-up
	@npx tsx hack/cluster.ts down

.PHONY: dev
dev: deps tools services ## Run the platform locally: control plane, operator, API, a sample Tenant (Ctrl-C stops it)
	@npx tsx hack/dev.ts

.PHONY: typecheck
typecheck: deps ## Type-check every TypeScript file
	npx tsc --noEmit -p tsconfig.json

.PHONY: lint
lint: deps typecheck ## ESLint (type-aware), Prettier, and the OpenAPI document (fresh, Redocly, Spectral); fails on any violation
	npx eslint --max-warnings=0 .
	npx prettier --check .
	npx tsx hack/openapi.ts --check
	npx redocly lint --format=stylish api/openapi.json
	npx spectral lint --fail-severity=error api/openapi.json

.PHONY: openapi
openapi: deps ## Write api/openapi.json and its types api/openapi.d.ts from the code that serves the document
	npx tsx hack/openapi.ts

.PHONY: test
test: deps node tools chromium lint ## Run every test (unit and integration, on Node 22) against the real services, the control plane and headless Chromium; the unit tests again on Node 24
	@echo "==> every test on Node.js $$(node --version)"
	npx mocha --ignore 'test/e2e/**' 'test/**/*.test.ts'
	@echo "==> the unit tests on Node.js $$($(NODE24_BIN)/node --version)"
	PATH="$(NODE24_BIN):$$PATH" npx mocha $(UNIT_TESTS)

UNIT_TESTS := --ignore 'test/e2e/**' --ignore 'test/**/*.integration.test.ts' 'test/**/*.test.ts'

.PHONY: test-unit
test-unit: deps ## Run the unit tests only (no services): every test/**/*.test.ts but *.integration.test.ts
	npx mocha $(UNIT_TESTS)

.PHONY: e2e
e2e: deps tools services chromium ## End-to-end tests (test/e2e/) on the make dev stack; starts one unless :8080 answers
	@npx tsx hack/e2e.ts

.PHONY: bench
bench: deps tools ## Run the benchmarks in bench/ (JSON lines)
	@for b in bench/*.bench.ts; do npx tsx "$$b"; done

# --- Containers and kind (needs Docker, kind, kubectl and helm) -------------
KIND_CLUSTER ?= tenantry
KIND_CONTEXT := kind-$(KIND_CLUSTER)
IMAGE ?= tenantry/tenantry
TAG ?= dev
# Calico replaces kind's default CNI, which does not enforce NetworkPolicy.
CALICO_VERSION ?= v3.30.3
CALICO_MANIFEST := https://raw.githubusercontent.com/projectcalico/calico/$(CALICO_VERSION)/manifests/calico.yaml
# helm from PATH, else the one `make tools` builds.
HELM ?= $(or $(shell command -v helm 2>/dev/null),$(TOOLS_CACHE)/helm-v3.22.0/helm)
# The chart test runs the same command with --dry-run and fails when the README differs.
HELM_DOCS := $(TOOLS_CACHE)/helm-docs-v1.14.2/helm-docs --chart-search-root charts --sort-values-order file
KUBECTL ?= kubectl --context $(KIND_CONTEXT)

.PHONY: kind-up
kind-up: ## Create the kind cluster (kind-config.yaml) and install Calico so NetworkPolicies are enforced
	@if kind get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)'; then \
	  echo "kind cluster $(KIND_CLUSTER) exists"; \
	else \
	  kind create cluster --name $(KIND_CLUSTER) --config kind-config.yaml; \
	fi
	@# Calico's manifest install: nodes stay NotReady until calico-node runs on each of them.
	@# Server-side apply, because some Calico CRDs exceed the client-side last-applied annotation limit.
	$(KUBECTL) apply --server-side --force-conflicts -f $(CALICO_MANIFEST)
	$(KUBECTL) -n kube-system rollout status daemonset/calico-node --timeout=300s
	$(KUBECTL) wait --for=condition=Ready nodes --all --timeout=300s

.PHONY: images
images: ## Build the one image (operator, API, worker) as tenantry/tenantry:dev (IMAGE, TAG)
	docker build -t $(IMAGE):$(TAG) .

.PHONY: kind-load
kind-load: ## Load the image into the kind cluster's nodes
	kind load docker-image $(IMAGE):$(TAG) --name $(KIND_CLUSTER)

.PHONY: deploy
deploy: ## Install throwaway PostgreSQL/RabbitMQ/Redis and the chart into the kind cluster (helm upgrade --install)
	$(KUBECTL) apply -f hack/kind/services.yaml
	$(KUBECTL) -n tenantry-deps wait --for=condition=Available deployment --all --timeout=300s
	$(HELM) upgrade --install tenantry charts/tenantry --kube-context $(KIND_CONTEXT) \
	  --namespace tenantry-system --create-namespace -f hack/kind/values.yaml \
	  --set image.repository=$(IMAGE) --set image.tag=$(TAG) --wait --timeout 5m
	@echo "deployed; try: kubectl --context $(KIND_CONTEXT) apply -f crds/samples/tenant-minimal.yaml && kubectl --context $(KIND_CONTEXT) get tenants -w"

.PHONY: chart-test
chart-test: deps tools ## Lint, render, dry-run and install the Helm chart, and upgrade from the previous chart version, against the control plane
	npx mocha test/charts/helm-chart.integration.test.ts test/charts/upgrade.integration.test.ts

.PHONY: chart-docs
chart-docs: tools ## Regenerate charts/tenantry/README.md from README.md.gotmpl and values.yaml (helm-docs)
	$(HELM_DOCS)

.PHONY: clean
clean: ## Stop the dev control plane and remove build output and .dev/
	-@npx tsx hack/cluster.ts down 2>/dev/null
	rm -rf dist .dev coverage
