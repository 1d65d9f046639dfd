#!/usr/bin/env bash
# Builds the pinned upstream components (test/tools/go.mod) into a cache folder keyed by the
# pin, so they are rebuilt only when the pin changes. Prints the bin folder.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
tools="$top/test/tools"
key=$(cat "$tools/go.mod" "$tools/go.sum" "$tools/etcd/main.go" "$tools/coredns/go.mod" "$tools/coredns/go.sum" "$0" | sha256sum | cut -c1-16)
bin="${MINIKUBELET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/minikubelet}/tools-$key/bin"
if [ -f "$bin/.complete" ]; then echo "$bin"; exit 0; fi
mkdir -p "$bin"
pkg=k8s.io/component-base/version
ld="-s -w -X $pkg.gitVersion=v1.37.2 -X $pkg.gitMajor=1 -X $pkg.gitMinor=37 -X $pkg.gitTreeState=clean"
# The tags of upstream's release builds (hack/lib/golang.sh): grpcnotrace keeps
# golang.org/x/net/trace out, which would stop the linker from dropping unused methods.
tags="selinux,notest,grpcnotrace"
cd "$tools"
for t in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kubeadm kube-proxy; do
  if [ ! -x "$bin/$t" ]; then
    echo "building $t (first run only; kube-apiserver takes ~9 min on 2 cores)" >&2
    CGO_ENABLED=0 go build -trimpath -tags "$tags" -ldflags "$ld" -o "$bin/$t.tmp" "k8s.io/kubernetes/cmd/$t"
    mv "$bin/$t.tmp" "$bin/$t"
  fi
done
if [ ! -x "$bin/etcd" ]; then
  echo "building etcd" >&2
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" ./etcd
  mv "$bin/etcd.tmp" "$bin/etcd"
fi
if [ ! -x "$bin/coredns" ]; then
  echo "building coredns (the version kubeadm deploys; ~2.5 min)" >&2
  (cd coredns && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/coredns.tmp" github.com/coredns/coredns)
  mv "$bin/coredns.tmp" "$bin/coredns"
fi
touch "$bin/.complete"
echo "$bin"
