package cri

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// statusRuntime answers Status with st, or err.
type statusRuntime struct {
	runtimeapi.RuntimeServiceClient
	st  *runtimeapi.RuntimeStatus
	err error
}

func (s *statusRuntime) Status(context.Context, *runtimeapi.StatusRequest, ...grpc.CallOption) (*runtimeapi.StatusResponse, error) {
	return &runtimeapi.StatusResponse{Status: s.st}, s.err
}

// Each Ready keeps the network's readiness for the pod workers, in upstream's words; a
// failed Status call leaves it as it was, and its return to ready is announced.
func TestReadyKeepsNetworkState(t *testing.T) {
	rtReady := &runtimeapi.RuntimeCondition{Type: runtimeapi.RuntimeReady, Status: true}
	notReady := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Reason: "NetworkPluginNotReady",
		Message: "Network plugin returns error: cni plugin not initialized"}
	fake := &statusRuntime{}
	c := NewFromServices(fake, nil)
	backs := 0
	c.Network().OnReady(func() { backs++ })
	if err := c.Network().Err(); err != nil {
		t.Fatalf("unknown state: %v, want no error", err)
	}
	for i, step := range []struct {
		conds   []*runtimeapi.RuntimeCondition
		callErr error
		want    string
		backs   int
	}{
		{conds: []*runtimeapi.RuntimeCondition{rtReady, notReady},
			want: "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"},
		{callErr: errors.New("unavailable"),
			want: "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"},
		{conds: []*runtimeapi.RuntimeCondition{rtReady}, want: "container runtime network not ready: <nil>"},
		{conds: []*runtimeapi.RuntimeCondition{rtReady, {Type: runtimeapi.NetworkReady, Status: true}}, backs: 1},
		{conds: []*runtimeapi.RuntimeCondition{rtReady, {Type: runtimeapi.NetworkReady, Status: true}}, backs: 1},
	} {
		fake.st, fake.err = &runtimeapi.RuntimeStatus{Conditions: step.conds}, step.callErr
		c.Ready(context.Background())
		if got := fmt.Sprint(c.Network().Err()); (step.want == "" && c.Network().Err() != nil) || (step.want != "" && got != step.want) {
			t.Errorf("step %d: %s, want %q", i, got, step.want)
		}
		if backs != step.backs {
			t.Errorf("step %d: back %d times, want %d", i, backs, step.backs)
		}
	}
}
