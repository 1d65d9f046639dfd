//go:build tools

// Package crio pins CRI-O for the test bed's third runtime: the newest release the Go
// module proxy served here (v1.35.0 and v1.37.0 were refused). hack/build-crio.sh builds
// it, and pinns from the same module's C source.
package crio

import (
	_ "github.com/cri-o/cri-o/cmd/crio"
)
