package cri

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// statsRuntime counts the stats calls in flight at once; each takes a little while.
type statsRuntime struct {
	runtimeapi.RuntimeServiceClient
	inFlight, most atomic.Int32
	release        chan struct{}
}

func (r *statsRuntime) enter() {
	n := r.inFlight.Add(1)
	for m := r.most.Load(); n > m && !r.most.CompareAndSwap(m, n); m = r.most.Load() {
	}
	<-r.release
	r.inFlight.Add(-1)
}

func (r *statsRuntime) ListPodSandboxStats(context.Context, *runtimeapi.ListPodSandboxStatsRequest, ...grpc.CallOption) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	r.enter()
	return &runtimeapi.ListPodSandboxStatsResponse{}, nil
}

func (r *statsRuntime) ListContainerStats(context.Context, *runtimeapi.ListContainerStatsRequest, ...grpc.CallOption) (*runtimeapi.ListContainerStatsResponse, error) {
	r.enter()
	return &runtimeapi.ListContainerStatsResponse{}, nil
}

// Stats calls reach the runtime one at a time (containerd 1.6's unlocked stats map), and
// a caller whose context ends while it waits gets its error instead of a call.
func TestStatsCallsOneAtATime(t *testing.T) {
	rt := &statsRuntime{release: make(chan struct{})}
	c := NewFromServices(rt, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			var err error
			if i%2 == 0 {
				_, err = c.ListPodSandboxStats(context.Background(), nil)
			} else {
				_, err = c.ListContainerStats(context.Background(), nil)
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	// The first call holds the turn; one waiting caller gives up.
	for rt.inFlight.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.ListPodSandboxStats(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting call with an ended context: %v, want %v", err, context.DeadlineExceeded)
	}
	for range 8 {
		rt.release <- struct{}{}
	}
	wg.Wait()
	if m := rt.most.Load(); m != 1 {
		t.Errorf("%d stats calls in flight at once, want 1", m)
	}
}
