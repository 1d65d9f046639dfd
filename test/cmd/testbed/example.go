package main

import (
	"context"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// runExamplePod is filled in with the pod lifecycle.
func runExamplePod(ctx context.Context, b *testbed.Bed) error { return nil }
