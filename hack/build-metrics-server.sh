#!/usr/bin/env bash
# Builds metrics-server (test/tools/metrics-server, its own module) into a cache folder
# keyed by its pin, apart from the other tools so a change here rebuilds only this one.
# Prints the binary's path.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mod="$top/test/tools/metrics-server"
key=$(cat "$mod/go.mod" "$mod/go.sum" "$0" | sha256sum | cut -c1-16)
dir="${MINIKUBELET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/minikubelet}/metrics-server-$key"
if [ -x "$dir/metrics-server" ]; then echo "$dir/metrics-server"; exit 0; fi
mkdir -p "$dir"
echo "building metrics-server (first run only; ~3 min on 2 cores)" >&2
(cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/metrics-server.tmp" sigs.k8s.io/metrics-server/cmd/metrics-server)
mv "$dir/metrics-server.tmp" "$dir/metrics-server"
echo "$dir/metrics-server"
