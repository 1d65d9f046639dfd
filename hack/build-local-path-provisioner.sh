#!/usr/bin/env bash
# Builds rancher's local-path-provisioner (test/tools/local-path-provisioner, its own
# module) into a cache folder keyed by its pin, apart from the other tools so a change here
# rebuilds only this one. Prints the binary's path.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mod="$top/test/tools/local-path-provisioner"
key=$(cat "$mod/go.mod" "$mod/go.sum" "$0" | sha256sum | cut -c1-16)
dir="${MINIKUBELET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/minikubelet}/local-path-provisioner-$key"
if [ -x "$dir/local-path-provisioner" ]; then echo "$dir/local-path-provisioner"; exit 0; fi
mkdir -p "$dir"
echo "building local-path-provisioner (first run only; ~2 min on 2 cores)" >&2
(cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/local-path-provisioner.tmp" github.com/rancher/local-path-provisioner)
mv "$dir/local-path-provisioner.tmp" "$dir/local-path-provisioner"
echo "$dir/local-path-provisioner"
