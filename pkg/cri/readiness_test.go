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

// handlersRuntime answers Status with a ready runtime listing handlers (or none).
type handlersRuntime struct {
	runtimeapi.RuntimeServiceClient
	resp  *runtimeapi.StatusResponse
	calls int
}

func (h *handlersRuntime) Status(context.Context, *runtimeapi.StatusRequest, ...grpc.CallOption) (*runtimeapi.StatusResponse, error) {
	h.calls++
	return h.resp, nil
}

// The handlers of a ready Status are kept sorted, and answer whether a handler supports
// user namespaces as upstream's HandlerSupportsUserNamespaces.
func TestHandlersSupportUserNamespaces(t *testing.T) {
	ready := &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: runtimeapi.RuntimeReady, Status: true}, {Type: runtimeapi.NetworkReady, Status: true}}}
	v2 := []*runtimeapi.RuntimeHandler{
		{Name: "runc", Features: &runtimeapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: true, UserNamespaces: true}},
		{Name: "", Features: &runtimeapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: true, UserNamespaces: true}},
		{Name: "kata"},
	}
	for _, tc := range []struct {
		name     string
		handlers []*runtimeapi.RuntimeHandler
		handler  string
		want     bool
		wantErr  string
	}{
		{name: "containerd 1.6 lists none", handler: "", want: false},
		{name: "none, a RuntimeClass handler", handler: "runc", want: false},
		{name: "default handler", handlers: v2, handler: "", want: true},
		{name: "named handler", handlers: v2, handler: "runc", want: true},
		{name: "handler without features", handlers: v2, handler: "kata", want: false},
		{name: "unknown handler", handlers: v2, handler: "gvisor", wantErr: `the handler "gvisor" is not known`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &handlersRuntime{resp: &runtimeapi.StatusResponse{Status: ready, RuntimeHandlers: tc.handlers}}
			c := NewFromServices(fake, nil)
			if c.Handlers().Known() {
				t.Fatal("known before any Status")
			}
			got, err := c.HandlerSupportsUserNamespaces(context.Background(), tc.handler)
			if got != tc.want || fmt.Sprint(err) != map[bool]string{true: tc.wantErr, false: "<nil>"}[tc.wantErr != ""] {
				t.Errorf("got %v, %v; want %v, %q", got, err, tc.want, tc.wantErr)
			}
			if fake.calls != 1 || !c.Handlers().Known() {
				t.Errorf("%d Status calls (known %v), want one asked on first use", fake.calls, c.Handlers().Known())
			}
			_, _ = c.HandlerSupportsUserNamespaces(context.Background(), tc.handler)
			if fake.calls != 1 {
				t.Errorf("asked again: %d calls", fake.calls)
			}
		})
	}
	fake := &handlersRuntime{resp: &runtimeapi.StatusResponse{Status: ready, RuntimeHandlers: v2,
		Features: &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true}}}
	c := NewFromServices(fake, nil)
	c.Ready(context.Background())
	if names := fmt.Sprint(c.Handlers().Handlers()); names != "[{ true true} {kata false false} {runc true true}]" {
		t.Errorf("handlers %s, want sorted by name", names)
	}
	if f := c.Handlers().Features(); f == nil || !f.SupplementalGroupsPolicy {
		t.Errorf("features %+v", f)
	}
	// A runtime that is not ready leaves what was known.
	fake.resp = &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{}}
	c.Ready(context.Background())
	if len(c.Handlers().Handlers()) != 3 {
		t.Errorf("handlers dropped while the runtime is not ready: %v", c.Handlers().Handlers())
	}
}
