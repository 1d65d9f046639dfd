package cri

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func linuxConfig(d runtimeapi.CgroupDriver) *runtimeapi.RuntimeConfigResponse {
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: d}}
}

func TestDecideCgroupDriver(t *testing.T) {
	unimplemented := errgrpc.ToNative(status.Error(codes.Unimplemented, "unknown method RuntimeConfig"))
	unavailable := errgrpc.ToNative(status.Error(codes.Unavailable, "connection refused"))
	for _, tc := range []struct {
		name, configured string
		resp             *runtimeapi.RuntimeConfigResponse
		err              error
		want             string
		fromRuntime      bool
		wantErr          bool
	}{
		{"runtime's systemd over the config's cgroupfs", CgroupfsDriver, linuxConfig(runtimeapi.CgroupDriver_SYSTEMD), nil, SystemdDriver, true, false},
		{"runtime's cgroupfs over the config's systemd", SystemdDriver, linuxConfig(runtimeapi.CgroupDriver_CGROUPFS), nil, CgroupfsDriver, true, false},
		{"agreeing", CgroupfsDriver, linuxConfig(runtimeapi.CgroupDriver_CGROUPFS), nil, CgroupfsDriver, true, false},
		{"Unimplemented (containerd 1.6): the config's", SystemdDriver, nil, unimplemented, SystemdDriver, false, false},
		{"no Linux config: the config's", CgroupfsDriver, &runtimeapi.RuntimeConfigResponse{}, nil, CgroupfsDriver, false, false},
		{"unknown driver", CgroupfsDriver, linuxConfig(runtimeapi.CgroupDriver(7)), nil, "", false, true},
		{"other failure", CgroupfsDriver, nil, unavailable, "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, from, err := DecideCgroupDriver(tc.configured, tc.resp, tc.err)
			if got != tc.want || from != tc.fromRuntime || (err != nil) != tc.wantErr {
				t.Errorf("got %q, %v, %v; want %q, %v, error %v", got, from, err, tc.want, tc.fromRuntime, tc.wantErr)
			}
		})
	}
}

// configRuntime answers RuntimeConfig's n-th call (from 0) with answer(n); with answer
// nil the method is Unimplemented, as containerd 1.6 answers it.
type configRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	calls  atomic.Int32
	answer func(n int) (*runtimeapi.RuntimeConfigResponse, error)
}

func (r *configRuntime) RuntimeConfig(ctx context.Context, req *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	n := int(r.calls.Add(1) - 1)
	if r.answer == nil {
		return r.UnimplementedRuntimeServiceServer.RuntimeConfig(ctx, req)
	}
	return r.answer(n)
}

func TestClientCgroupDriver(t *testing.T) {
	saved := runtimeConfigBackoff
	t.Cleanup(func() { runtimeConfigBackoff = saved })
	runtimeConfigBackoff.Duration = time.Millisecond
	starting := func(ok int) func(int) (*runtimeapi.RuntimeConfigResponse, error) {
		return func(n int) (*runtimeapi.RuntimeConfigResponse, error) {
			if n < ok {
				return nil, status.Error(codes.Unavailable, "starting")
			}
			return linuxConfig(runtimeapi.CgroupDriver_SYSTEMD), nil
		}
	}
	for _, tc := range []struct {
		name    string
		answer  func(int) (*runtimeapi.RuntimeConfigResponse, error)
		want    string
		calls   int32
		wantErr bool
	}{
		{"Unimplemented: the config's, asked once", nil, CgroupfsDriver, 1, false},
		{"the runtime's", starting(0), SystemdDriver, 1, false},
		{"a runtime still starting is asked again", starting(2), SystemdDriver, 3, false},
		{"three failures fail", starting(3), "", 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := &configRuntime{answer: tc.answer}
			c := serveCRI(t, rt, nil)
			got, err := c.CgroupDriver(context.Background(), CgroupfsDriver)
			if got != tc.want || (err != nil) != tc.wantErr || rt.calls.Load() != tc.calls {
				t.Errorf("got %q, %v after %d calls; want %q, error %v after %d", got, err, rt.calls.Load(), tc.want, tc.wantErr, tc.calls)
			}
			if tc.wantErr && !errdefs.IsUnavailable(err) {
				t.Errorf("error %v does not keep the runtime's", err)
			}
		})
	}
}
