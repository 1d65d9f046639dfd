//go:build tools

// Package containerd2 pins containerd 2.x for the test bed's second runtime: the newest
// 2.x release the Go module proxy served here (hack/build-containerd2.sh builds it).
package containerd2

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
