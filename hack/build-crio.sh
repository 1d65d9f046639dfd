#!/usr/bin/env bash
# Builds CRI-O (test/tools/crio, its own module: the pin) and its pinns helper (C, from the
# same module's source) into a cache folder keyed by the pin. The test bed runs them when
# MINIKUBELET_RUNTIME=crio, with Debian's conmon (apt) and the runc of the containerd 2.x
# build if it is there (else Debian's). Prints the bin folder. Not part of `make deps`:
# the first build takes about 9 minutes on 2 cores.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mod="$top/test/tools/crio"
key=$(cat "$mod/go.mod" "$mod/go.sum" "$0" | sha256sum | cut -c1-16)
bin="${MINIKUBELET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/minikubelet}/crio-$key/bin"
if [ -f "$bin/.complete" ]; then echo "$bin"; exit 0; fi
mkdir -p "$bin"
version=$(cd "$mod" && go list -m -f '{{.Version}}' github.com/cri-o/cri-o)
src=$(cd "$mod" && go mod download -json github.com/cri-o/cri-o | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
# The tags CRI-O's Makefile gives (BUILDTAGS and hack/*_tag.sh on this machine): no
# btrfs or devicemapper graph drivers, no ostree, OpenPGP in Go, seccomp with libseccomp.
tags="containers_image_ostree_stub containers_image_openpgp exclude_graphdriver_btrfs btrfs_noversion exclude_graphdriver_devicemapper seccomp"
echo "building crio $version (first run only; ~9 min on 2 cores)" >&2
(cd "$mod" && CGO_ENABLED=1 nice -n 10 go build -trimpath -tags "$tags" -ldflags "-s -w" \
  -o "$bin/crio" github.com/cri-o/cri-o/cmd/crio)
echo "building pinns $version" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$src/pinns" "$tmp/pinns"
chmod -R u+w "$tmp/pinns"
nice -n 10 make -s -C "$tmp/pinns" >&2
cp "$tmp/bin/pinns" "$bin/pinns"
touch "$bin/.complete"
echo "$bin"
