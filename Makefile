# Tenantry developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

NPM_STAMP := node_modules/.package-lock.json

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund

.PHONY: deps
deps: $(NPM_STAMP) ## Install the npm dependencies from the lockfile

.PHONY: tools
tools: ## Build (once, then cached) etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, helm and KWOK
	@bash hack/build-tools.sh

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
lint: deps typecheck ## ESLint (type-aware) and Prettier; fails on any violation
	npx eslint --max-warnings=0 .
	npx prettier --check .

.PHONY: test
test: deps tools lint ## Run every test (unit and integration) against the real services and control plane
	npx mocha 'test/unit/**/*.test.ts' 'test/integration/**/*.test.ts'

.PHONY: test-unit
test-unit: deps ## Run the unit tests only
	npx mocha 'test/unit/**/*.test.ts'

.PHONY: bench
bench: deps tools ## Run the benchmarks in bench/ (JSON lines)
	@for b in bench/*.bench.ts; do npx tsx "$$b"; done

.PHONY: clean
clean: ## Stop the dev control plane and remove build output and .dev/
	-@npx tsx hack/cluster.ts down 2>/dev/null
	rm -rf dist .dev coverage
