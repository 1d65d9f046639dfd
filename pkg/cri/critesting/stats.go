package critesting

import (
	"context"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The stats calls (pkg/kubelet/stats reads the runtime through these).

func (r fakeRuntime) ListContainerStats(ctx context.Context, in *runtimeapi.ListContainerStatsRequest, _ ...grpc.CallOption) (*runtimeapi.ListContainerStatsResponse, error) {
	stats, err := r.f.ListContainerStats(ctx, in.Filter)
	return &runtimeapi.ListContainerStatsResponse{Stats: stats}, asGRPC(err)
}

func (r fakeRuntime) ListPodSandboxStats(ctx context.Context, in *runtimeapi.ListPodSandboxStatsRequest, _ ...grpc.CallOption) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	stats, err := r.f.ListPodSandboxStats(ctx, in.Filter)
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: stats}, asGRPC(err)
}

func (i fakeImages) ImageFsInfo(ctx context.Context, _ *runtimeapi.ImageFsInfoRequest, _ ...grpc.CallOption) (*runtimeapi.ImageFsInfoResponse, error) {
	resp, err := i.f.ImageFsInfo(ctx)
	return resp, asGRPC(err)
}
