#!/usr/bin/env bash
# Builds containerd 2.x (test/tools/containerd2, its own module: the pin) with its runc shim
# and ctr, and runc (test/tools/runc: Debian's 1.1.5 lacks the ID-mapped mounts containerd
# 2.x needs for user namespaces; cgo with libseccomp, as runc is built), into a cache folder
# keyed by the pins. The test bed runs them instead of Debian's containerd 1.6 when
# MINIKUBELET_RUNTIME=containerd2. Prints the bin folder.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mod="$top/test/tools/containerd2"
runcmod="$top/test/tools/runc"
key=$(cat "$mod/go.mod" "$mod/go.sum" "$runcmod/go.mod" "$runcmod/go.sum" "$0" | sha256sum | cut -c1-16)
bin="${MINIKUBELET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/minikubelet}/containerd2-$key/bin"
if [ -f "$bin/.complete" ]; then echo "$bin"; exit 0; fi
mkdir -p "$bin"
version=$(cd "$mod" && go list -m -f '{{.Version}}' github.com/containerd/containerd/v2)
echo "building containerd $version (first run only; ~2 min on 2 cores)" >&2
# No cgo: the btrfs, devmapper and zfs snapshotters need it and the bed uses overlayfs.
(cd "$mod" && CGO_ENABLED=0 go build -trimpath -tags "no_btrfs no_devmapper no_zfs" \
  -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$version" -o "$bin/" \
  github.com/containerd/containerd/v2/cmd/containerd \
  github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
  github.com/containerd/containerd/v2/cmd/ctr)
rv=$(cd "$runcmod" && go list -m -f '{{.Version}}' github.com/opencontainers/runc)
echo "building runc $rv (first run only; ~40 s)" >&2
(cd "$runcmod" && CGO_ENABLED=1 go build -trimpath -tags "seccomp urfave_cli_no_docs" \
  -ldflags "-s -w -X main.version=${rv#v}" -o "$bin/runc" github.com/opencontainers/runc)
touch "$bin/.complete"
echo "$bin"
