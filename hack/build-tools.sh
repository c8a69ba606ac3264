#!/usr/bin/env bash
# Builds the real Kubernetes control-plane binaries (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl) plus helm, helm-docs, KWOK,
# promtool and our kstatus checker (tools/kstatus) from Go modules into a cache outside the repository, keyed by
# version, and fetches the Prometheus Operator's CRDs (its module holds them) for
# the chart's monitoring tests. Anything already cached is not rebuilt, so a
# second run takes seconds.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
k8s_version=$(cat "$root/tools/k8s/VERSION")
helm_version=${HELM_VERSION:-v3.22.0}
kwok_version=${KWOK_VERSION:-v0.8.0}
helm_docs_version=${HELM_DOCS_VERSION:-v1.14.2}
# Prometheus 3.x releases are tagged v0.3xx.y as Go modules (v3.16.0 here).
prometheus_version=${PROMETHEUS_VERSION:-v0.316.0}
prometheus_operator_version=${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}
cache=${TENANTRY_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tenantry/tools}
bindir="$cache/k8s-$k8s_version"

if ! command -v go >/dev/null 2>&1; then
  echo "error: Go is not installed or not on PATH. Install Go 1.26 or newer (https://go.dev/doc/install) and run 'make tools' again." >&2
  exit 1
fi

mkdir -p "$cache"
# One build at a time per cache: a second `make tools` (another checkout, a
# parallel CI job) waits here instead of racing on the same temporary files.
exec 9>"$cache/.build.lock"
if ! flock -n 9; then
  echo "==> another build of the tools is running on $cache; waiting for it" >&2
  flock 9
fi

mkdir -p "$bindir" "$cache/helm-$helm_version" "$cache/helm-docs-$helm_docs_version" "$cache/kwok-$kwok_version" "$cache/prometheus-$prometheus_version"
step() { printf '==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

minor=${k8s_version#v1.}; minor=${minor%%.*}
stamp=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  stamp+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

build_k8s() { # name package
  local name=$1 pkg=$2
  if [ -x "$bindir/$name" ]; then step "$name $k8s_version (cached)"; return; fi
  step "building $name $k8s_version (the first build takes several minutes)"
  (cd "$root/tools/k8s" && CGO_ENABLED=0 go build -trimpath -tags selinux,notest,grpcnotrace \
    -ldflags "-s -w $stamp" -o "$bindir/$name.tmp" "$pkg")
  mv "$bindir/$name.tmp" "$bindir/$name"
}

go_install() { # name module version dir
  local name=$1 module=$2 version=$3 dir=$4
  if [ -x "$dir/$name" ]; then step "$name $version (cached)"; return 0; fi
  step "installing $name $version"
  GOBIN="$dir" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "$module@$version"
}

build_k8s etcd ./cmd/etcd
build_k8s kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build_k8s kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build_k8s kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
build_k8s kubectl k8s.io/kubernetes/cmd/kubectl
go_install helm helm.sh/helm/v3/cmd/helm "$helm_version" "$cache/helm-$helm_version"
ln -sf "$cache/helm-$helm_version/helm" "$bindir/helm"
# helm-docs generates charts/tenantry/README.md from values.yaml (make chart-docs).
go_install helm-docs github.com/norwoodj/helm-docs/cmd/helm-docs "$helm_docs_version" "$cache/helm-docs-$helm_docs_version"
ln -sf "$cache/helm-docs-$helm_docs_version/helm-docs" "$bindir/helm-docs"
# KWOK is optional: fake nodes make Deployments report Running pods.
if go_install kwok sigs.k8s.io/kwok/cmd/kwok "$kwok_version" "$cache/kwok-$kwok_version"; then
  ln -sf "$cache/kwok-$kwok_version/kwok" "$bindir/kwok"
else
  step "KWOK $kwok_version did not build; continuing without fake nodes"
fi
# promtool checks the chart's alert rules (the first build takes several minutes).
go_install promtool github.com/prometheus/prometheus/cmd/promtool "$prometheus_version" "$cache/prometheus-$prometheus_version"
ln -sf "$cache/prometheus-$prometheus_version/promtool" "$bindir/promtool"
# The CRDs of ServiceMonitor, PodMonitor and PrometheusRule, from the operator's module in the module cache.
crds="$cache/prometheus-operator-crds-$prometheus_operator_version"
if [ -d "$crds" ]; then
  step "Prometheus Operator CRDs $prometheus_operator_version (cached)"
else
  step "fetching the Prometheus Operator CRDs $prometheus_operator_version"
  module_dir=$(cd "$cache" && go mod download -json "github.com/prometheus-operator/prometheus-operator@$prometheus_operator_version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  mkdir -p "$crds.tmp"
  for kind in servicemonitors podmonitors prometheusrules; do
    cp "$module_dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$crds.tmp/"
  done
  mv "$crds.tmp" "$crds"
fi
ln -sfn "$crds" "$bindir/prometheus-operator-crds"
# kstatus computes an object's status with sigs.k8s.io/cli-utils itself, for the
# Tenant status tests. Its cache key is the cli-utils version plus a hash of the
# module's files, so an edit to tools/kstatus builds a fresh one.
kstatus_dir="$root/tools/kstatus"
cli_utils_version=$(awk '$1 == "sigs.k8s.io/cli-utils" { print $2 }' "$kstatus_dir/go.mod")
kstatus_hash=$(cat "$kstatus_dir/go.mod" "$kstatus_dir/go.sum" "$kstatus_dir"/*.go | sha256sum | cut -c1-12)
kstatus_cache="$cache/kstatus-$cli_utils_version-$kstatus_hash"
if [ -x "$kstatus_cache/kstatus" ]; then
  step "kstatus (cli-utils $cli_utils_version, cached)"
else
  step "building kstatus (cli-utils $cli_utils_version)"
  mkdir -p "$kstatus_cache"
  (cd "$kstatus_dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$kstatus_cache/kstatus.tmp" .)
  mv "$kstatus_cache/kstatus.tmp" "$kstatus_cache/kstatus"
fi
ln -sf "$kstatus_cache/kstatus" "$bindir/kstatus"
step "tools ready in $bindir"
"$bindir/kube-apiserver" --version
