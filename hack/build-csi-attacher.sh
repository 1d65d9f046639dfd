#!/usr/bin/env bash
# Builds external-attacher's csi-attacher (test/tools/csi-attacher, its own module) into a
# cache folder keyed by its pin, apart from the other tools so a change here rebuilds only
# this one. The test bed runs it for its CSI driver (test/csidriver). Prints the binary's path.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mod="$top/test/tools/csi-attacher"
key=$(cat "$mod/go.mod" "$mod/go.sum" "$0" | sha256sum | cut -c1-16)
dir="${MINIKUBELET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/minikubelet}/csi-attacher-$key"
if [ -x "$dir/csi-attacher" ]; then echo "$dir/csi-attacher"; exit 0; fi
mkdir -p "$dir"
echo "building csi-attacher (first run only)" >&2
(cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/csi-attacher.tmp" github.com/kubernetes-csi/external-attacher/v4/cmd/csi-attacher)
mv "$dir/csi-attacher.tmp" "$dir/csi-attacher"
echo "$dir/csi-attacher"
