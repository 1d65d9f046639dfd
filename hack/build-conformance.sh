#!/usr/bin/env bash
# Builds upstream's conformance suite (e2e.test), the ginkgo runner, and static agnhost and nnp
# from test/tools/conformance (the pinned k8s.io/kubernetes) into a cache folder keyed by
# that pin. Prints the folder. e2e.test is big: ~30 min on 2 cores the first time.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mod="$top/test/tools/conformance"
key=$(cat "$mod/go.mod" "$mod/go.sum" "$0" | sha256sum | cut -c1-16)
dir="${MINIKUBELET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/minikubelet}/conformance-$key"
if [ -f "$dir/.complete" ]; then echo "$dir"; exit 0; fi
mkdir -p "$dir"
cd "$mod"
if [ ! -x "$dir/ginkgo" ]; then
  echo "building ginkgo" >&2
  go build -trimpath -o "$dir/ginkgo.tmp" github.com/onsi/ginkgo/v2/ginkgo
  mv "$dir/ginkgo.tmp" "$dir/ginkgo"
fi
if [ ! -x "$dir/agnhost" ]; then
  # static: it runs in an image of busybox files, with no C library
  echo "building agnhost" >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/agnhost.tmp" k8s.io/kubernetes/test/images/agnhost
  mv "$dir/agnhost.tmp" "$dir/agnhost"
fi
if [ ! -x "$dir/nnp" ]; then
  echo "building nnp (the nonewprivs image's program)" >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/nnp.tmp" k8s.io/kubernetes/test/images/nonewprivs
  mv "$dir/nnp.tmp" "$dir/nnp"
fi
if [ ! -f "$dir/localhost.key" ]; then
  # the serving certificate upstream's agnhost image has at its root (porter, netexec --tls)
  src=$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)/test/images/agnhost/porter
  cp "$src/localhost.crt" "$src/localhost.key" "$dir/"
fi
if [ ! -x "$dir/e2e.test" ]; then
  echo "building e2e.test (first run only; ~30 min on 2 cores)" >&2
  # the version stamp of upstream's builds: specs pick their pod-security fixtures by it
  pkg=k8s.io/component-base/version
  go test -c -vet=off -ldflags "-s -w -X $pkg.gitVersion=v1.37.2 -X $pkg.gitMajor=1 -X $pkg.gitMinor=37 -X $pkg.gitTreeState=clean" \
    -o "$dir/e2e.test.tmp" k8s.io/kubernetes/test/e2e
  mv "$dir/e2e.test.tmp" "$dir/e2e.test"
fi
touch "$dir/.complete"
echo "$dir"
