#!/usr/bin/env bash
# Regenerates go.mod for a Kubernetes version: requires k8s.io/kubernetes and
# replaces each staging module with its published v0.<minor>.<patch> tag.
# Usage: tools/k8s/gen-gomod.sh v1.35.4   (then commit go.mod and go.sum)
set -euo pipefail
version=${1:?usage: gen-gomod.sh vX.Y.Z}
cd "$(dirname "$0")"
mod=$(go mod download -json "k8s.io/kubernetes@${version}" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
staging_version="v0.${version#v1.}"
etcd_version=$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2}' "$mod")
{
  echo "module tenantry.io/tools/k8s"
  echo
  grep -E '^(go|godebug) ' "$mod"
  echo
  echo "require ("
  echo "	k8s.io/kubernetes ${version}"
  echo "	go.etcd.io/etcd/server/v3 ${etcd_version}"
  echo ")"
  echo
  echo "replace ("
  awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$mod" | while read -r m; do
    echo "	${m} => ${m} ${staging_version}"
  done
  echo ")"
} > go.mod
echo "$version" > VERSION
GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || GOFLAGS=-mod=mod go get ./... 
