# xtrace-operator — the operator (manager) and the xtrace server, one Go module.

# Image names used by docker-build and deploy.
IMG ?= ghcr.io/xtrace-dev/xtrace-operator:dev
SERVER_IMG ?= ghcr.io/xtrace-dev/xtrace:dev
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

# Kubernetes version of the test control plane (must match the k8s.io/* libraries in go.mod).
K8S_VERSION ?= 1.37.2
LOCALBIN ?= $(CURDIR)/bin
K8S_BIN_DIR ?= $(LOCALBIN)/k8s/$(K8S_VERSION)
export KUBEBUILDER_ASSETS ?= $(K8S_BIN_DIR)

# The reference Prometheus of the PromQL comparison tests, built from the
# version of github.com/prometheus/prometheus in go.mod.
PROMETHEUS_MODULE_VERSION ?= $(shell go list -m -f '{{.Version}}' github.com/prometheus/prometheus)
PROMETHEUS_BIN_DIR ?= $(LOCALBIN)/prometheus/$(PROMETHEUS_MODULE_VERSION)

# Tools, pinned, installed into ./bin with `go install`.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
HELM_VERSION ?= v3.22.0
export HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION).d/helm
KUBECTL ?= kubectl

GO_TEST_FLAGS ?= -count=1 -timeout=45m
BENCH_FLAGS ?=
SERVER_LDFLAGS := -X github.com/xtrace-dev/xtrace-operator/server/internal/version.Version=$(VERSION)

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRD and RBAC manifests under config/.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd:allowDangerousTypes=true paths="./api/...;./controllers/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	cp config/crd/bases/observability.xtrace.dev_xtraces.yaml charts/xtrace-operator/files/crd.yaml
	cp config/rbac/role.yaml charts/xtrace-operator/files/role.yaml

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods for the API types.
	$(CONTROLLER_GEN) object paths="./api/..."

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: test
test: manifests generate fmt vet k8s-binaries prometheus compat-deps helm ## Run every test: unit, real Postgres, envtest, simulated cluster, real SDKs.
	go test $(GO_TEST_FLAGS) ./...

.PHONY: test-unit
test-unit: ## Quick tests: no Kubernetes binaries, no npm, no generated files rewritten (go test -short).
	go test $(GO_TEST_FLAGS) -short ./...

.PHONY: compat-deps
compat-deps: ## Install the pinned npm clients of the compatibility suite (hack/compat).
	cd hack/compat && npm ci --no-audit --no-fund --loglevel=error

.PHONY: verify
verify: manifests generate ui ## Fail when generated files (CRD, RBAC, deepcopy, the UI's vendored uPlot) or formatting are stale.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed on:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	@test -z "$$(git status --porcelain -- api config charts)" || { echo "generated files are stale: run 'make manifests generate' and commit"; git status --short -- api config charts; exit 1; }
	@test -z "$$(git status --porcelain -- $(UI_DIR)/assets/vendor)" || { echo "the UI's vendored files are stale: run 'make ui' and commit"; git status --short -- $(UI_DIR)/assets/vendor; exit 1; }

# The web UI (server/internal/ui) is plain JavaScript modules embedded as they
# are; the only build step copies uPlot, pinned by web/package-lock.json, into
# assets/vendor. Its output is committed, so `go build` needs no Node.
UI_DIR := server/internal/ui

.PHONY: ui
ui: ## Copy the pinned uPlot into the web UI's embedded assets (committed; make verify checks them).
	cd $(UI_DIR)/web && npm ci --no-audit --no-fund --loglevel=error
	cp $(UI_DIR)/web/node_modules/uplot/dist/uPlot.iife.min.js $(UI_DIR)/web/node_modules/uplot/dist/uPlot.min.css $(UI_DIR)/assets/vendor/
	cp $(UI_DIR)/web/node_modules/uplot/LICENSE $(UI_DIR)/assets/vendor/uPlot.LICENSE.txt

.PHONY: ui-screenshots
ui-screenshots: ## Retake the README's screenshots of the web UI (docs/images/ui-*.png) in headless Chromium.
	mkdir -p docs/images
	go test -count=1 -run '^TestBrowser$$' ./$(UI_DIR) -args -ui.screenshots=$(CURDIR)/docs/images

.PHONY: prometheus
prometheus: ## Build the reference Prometheus server from source (cached in bin/prometheus; the PromQL comparison tests run it).
	PROMETHEUS_MODULE_VERSION=$(PROMETHEUS_MODULE_VERSION) OUT_DIR=$(PROMETHEUS_BIN_DIR) hack/build-prometheus.sh

.PHONY: k8s-binaries
k8s-binaries: ## Build kube-apiserver, etcd, kube-controller-manager, kube-scheduler and kwok from source (cached in bin/k8s).
	K8S_VERSION=$(K8S_VERSION) OUT_DIR=$(K8S_BIN_DIR) hack/build-k8s-binaries.sh

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the manager and the xtrace server into bin/.
	go build -o $(LOCALBIN)/manager .
	CGO_ENABLED=0 go build -trimpath -ldflags "$(SERVER_LDFLAGS)" -o $(LOCALBIN)/xtrace ./server/cmd/xtrace

.PHONY: run
run: manifests generate ## Run the operator against the cluster in ~/.kube/config.
	go run ./main.go

.PHONY: run-server
run-server: ## Run the xtrace server locally (starts a local Postgres under .data/ when DATABASE_URL is unset).
	CGO_ENABLED=0 go build -ldflags "$(SERVER_LDFLAGS)" -o $(LOCALBIN)/xtrace ./server/cmd/xtrace
	go build -o $(LOCALBIN)/run-server ./hack/run-server
	$(LOCALBIN)/run-server -server $(LOCALBIN)/xtrace -data .data

.PHONY: bench
bench: ## Benchmark ingest, storage, queries and pruning on the fleet profile (BENCH_FLAGS=-steps 17280 for a full day).
	CGO_ENABLED=0 go build -ldflags "$(SERVER_LDFLAGS)" -o $(LOCALBIN)/xtrace ./server/cmd/xtrace
	go run ./server/bench -server $(LOCALBIN)/xtrace $(BENCH_FLAGS)

.PHONY: docker-build
docker-build: ## Build the operator and server images with Docker.
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .
	docker build --build-arg VERSION=$(VERSION) -t $(SERVER_IMG) -f server/Dockerfile .

##@ Deployment

.PHONY: install
install: manifests ## Install the CRD into the cluster in ~/.kube/config.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: manifests ## Remove the CRD from the cluster.
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: manifests ## Deploy the operator (config/default) with image IMG.
	$(KUBECTL) kustomize config/default | sed "s|image: ghcr.io/xtrace-dev/xtrace-operator:latest|image: $(IMG)|" | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: ## Remove the operator deployed by `make deploy`.
	$(KUBECTL) kustomize config/default | $(KUBECTL) delete --ignore-not-found -f -

##@ Tools

.PHONY: helm
helm: $(HELM) ## Build the pinned helm CLI into bin/ (the packaging tests render and lint the chart with it).
$(HELM):
	GOBIN=$(dir $(HELM)) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

.PHONY: images
images: ## Build both OCI images without Docker into bin/images (hack/imagebuild).
	go run ./hack/imagebuild -out $(LOCALBIN)/images -version $(VERSION)

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)
$(CONTROLLER_GEN):
	mkdir -p $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $(CONTROLLER_GEN)
