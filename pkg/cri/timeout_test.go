package cri

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// deadlineRuntime records how long each call was given.
type deadlineRuntime struct {
	runtimeapi.RuntimeServiceClient
	left map[string]time.Duration
}

func (d *deadlineRuntime) record(ctx context.Context, op string) {
	if dl, ok := ctx.Deadline(); ok {
		d.left[op] = time.Until(dl)
	} else {
		d.left[op] = -1
	}
}

func (d *deadlineRuntime) RunPodSandbox(ctx context.Context, _ *runtimeapi.RunPodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.RunPodSandboxResponse, error) {
	d.record(ctx, "run")
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: "sb"}, nil
}

func (d *deadlineRuntime) StopContainer(ctx context.Context, _ *runtimeapi.StopContainerRequest, _ ...grpc.CallOption) (*runtimeapi.StopContainerResponse, error) {
	d.record(ctx, "stop")
	return &runtimeapi.StopContainerResponse{}, nil
}

func (d *deadlineRuntime) StartContainer(ctx context.Context, _ *runtimeapi.StartContainerRequest, _ ...grpc.CallOption) (*runtimeapi.StartContainerResponse, error) {
	d.record(ctx, "start")
	return &runtimeapi.StartContainerResponse{}, nil
}

// deadlineImages records whether a pull was bounded.
type deadlineImages struct {
	runtimeapi.ImageServiceClient
	bounded *bool
}

func (d deadlineImages) PullImage(ctx context.Context, _ *runtimeapi.PullImageRequest, _ ...grpc.CallOption) (*runtimeapi.PullImageResponse, error) {
	_, *d.bounded = ctx.Deadline()
	return &runtimeapi.PullImageResponse{ImageRef: "sha256:1"}, nil
}

// As upstream's CRI client: a sandbox gets twice the timeout, a stop the timeout plus its
// grace period (a 5 min grace cut off at 2 min would never reach the SIGKILL), other calls
// the timeout, a pull none; a caller's own deadline is kept.
func TestCallTimeouts(t *testing.T) {
	rt := &deadlineRuntime{left: map[string]time.Duration{}}
	bounded := true
	c := NewFromServices(rt, deadlineImages{bounded: &bounded})
	ctx := context.Background()
	if _, err := c.PullImage(ctx, "busybox", nil, nil); err != nil {
		t.Fatal(err)
	}
	if bounded {
		t.Error("a pull was given a deadline: a large image would never finish")
	}
	if _, err := c.RunSandbox(ctx, &runtimeapi.PodSandboxConfig{}, ""); err != nil {
		t.Fatal(err)
	}
	if err := c.StopContainer(ctx, "c", 300); err != nil {
		t.Fatal(err)
	}
	if err := c.StartContainer(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	for op, want := range map[string]time.Duration{"run": 4 * time.Minute, "stop": 7 * time.Minute, "start": 2 * time.Minute} {
		if got := rt.left[op]; got > want || got < want-time.Minute {
			t.Errorf("%s: given %v, want %v", op, got, want)
		}
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := c.StopContainer(short, "c", 300); err != nil {
		t.Fatal(err)
	}
	if got := rt.left["stop"]; got > 10*time.Second {
		t.Errorf("stop with the caller's 10s deadline: given %v", got)
	}
}
