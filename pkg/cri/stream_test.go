package cri

import (
	"context"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// streamRuntime answers the streaming and stats calls; a set err is returned instead.
type streamRuntime struct {
	runtimeapi.RuntimeServiceClient
	err  error
	exec *runtimeapi.ExecRequest
}

func (f *streamRuntime) Exec(_ context.Context, in *runtimeapi.ExecRequest, _ ...grpc.CallOption) (*runtimeapi.ExecResponse, error) {
	f.exec = in
	return &runtimeapi.ExecResponse{Url: "http://rt/exec/1"}, f.err
}

func (f *streamRuntime) Attach(context.Context, *runtimeapi.AttachRequest, ...grpc.CallOption) (*runtimeapi.AttachResponse, error) {
	return &runtimeapi.AttachResponse{Url: "http://rt/attach/1"}, f.err
}

func (f *streamRuntime) PortForward(context.Context, *runtimeapi.PortForwardRequest, ...grpc.CallOption) (*runtimeapi.PortForwardResponse, error) {
	return &runtimeapi.PortForwardResponse{Url: "http://rt/portforward/1"}, f.err
}

func (f *streamRuntime) ListContainerStats(context.Context, *runtimeapi.ListContainerStatsRequest, ...grpc.CallOption) (*runtimeapi.ListContainerStatsResponse, error) {
	return &runtimeapi.ListContainerStatsResponse{Stats: []*runtimeapi.ContainerStats{{}}}, f.err
}

// Each typed call is counted under upstream's operation_type, and a gRPC error comes back
// classed (NotFound -> errdefs.IsNotFound) with the runtime's message.
func TestTypedCallsTimedAndClassed(t *testing.T) {
	ctx := context.Background()
	rt := &streamRuntime{}
	c := NewFromServices(rt, nil)
	calls := map[string]func() (any, error){
		"exec": func() (any, error) {
			return c.Exec(ctx, "c1", []string{"ls"}, Streams{Stdout: true, TTY: true})
		},
		"attach":               func() (any, error) { return c.Attach(ctx, "c1", Streams{Stdin: true}) },
		"port_forward":         func() (any, error) { return c.PortForward(ctx, "s1", []int32{80}) },
		"list_container_stats": func() (any, error) { return c.ListContainerStats(ctx, nil) },
	}
	for op, fn := range calls {
		before := counted(t, "kubelet_runtime_operations_errors_total", op)
		rt.err = nil
		if v, err := fn(); err != nil || v == "" {
			t.Errorf("%s: %v, %v", op, v, err)
		}
		rt.err = status.Error(codes.NotFound, "container \"c1\" not found")
		_, err := fn()
		if !errdefs.IsNotFound(err) || err.Error() != "container \"c1\" not found" {
			t.Errorf("%s: error %v, want a NotFound with the runtime's message", op, err)
		}
		if n := counted(t, "kubelet_runtime_operations_errors_total", op) - before; n != 1 {
			t.Errorf("%s: %v errors counted, want 1", op, n)
		}
	}
	if e := rt.exec; e.ContainerId != "c1" || !e.Tty || !e.Stdout || e.Stderr || e.Stdin {
		t.Errorf("exec request %+v", e)
	}
	for op := range calls {
		if n := counted(t, "kubelet_runtime_operations_duration_seconds", op); n < 2 {
			t.Errorf("%s: %v calls timed, want 2", op, n)
		}
	}
}

// counted reads a counter's value or a histogram's sample count for one operation_type.
func counted(t *testing.T, name, op string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == name && len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == op {
				return m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}
