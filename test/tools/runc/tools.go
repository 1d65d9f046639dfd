//go:build tools

// Package runc pins the runc that the test bed's containerd 2.x runs: Debian's runc 1.1.5
// has no ID-mapped mounts, without which containerd 2.x reports no user namespace
// support (hack/build-containerd2.sh builds it).
package runc

import _ "github.com/opencontainers/runc"
