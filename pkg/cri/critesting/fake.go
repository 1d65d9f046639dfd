// Package critesting gives unit tests a cri.Client over cri-api's fake runtime and image
// services. Only tests import it.
package critesting

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// NewFake returns a cri.Client over cri-api's FakeRuntimeService and FakeImageService (for
// unit tests of code that acts through the runtime). Calls the fakes do not implement
// panic, which a test notices at once.
func NewFake(rt *critest.FakeRuntimeService, img *critest.FakeImageService) *cri.Client {
	return cri.NewFromServices(fakeRuntime{f: rt}, fakeImages{f: img})
}

type fakeRuntime struct {
	runtimeapi.RuntimeServiceClient // unimplemented calls
	f                               *critest.FakeRuntimeService
}

func (r fakeRuntime) Version(ctx context.Context, in *runtimeapi.VersionRequest, _ ...grpc.CallOption) (*runtimeapi.VersionResponse, error) {
	return r.f.Version(ctx, in.Version)
}

func (r fakeRuntime) Status(ctx context.Context, in *runtimeapi.StatusRequest, _ ...grpc.CallOption) (*runtimeapi.StatusResponse, error) {
	return r.f.Status(ctx, in.Verbose)
}

func (r fakeRuntime) RunPodSandbox(ctx context.Context, in *runtimeapi.RunPodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.RunPodSandboxResponse, error) {
	id, err := r.f.RunPodSandbox(ctx, in.Config, in.RuntimeHandler)
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, err
}

func (r fakeRuntime) StopPodSandbox(ctx context.Context, in *runtimeapi.StopPodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.StopPodSandboxResponse, error) {
	return &runtimeapi.StopPodSandboxResponse{}, r.f.StopPodSandbox(ctx, in.PodSandboxId)
}

func (r fakeRuntime) RemovePodSandbox(ctx context.Context, in *runtimeapi.RemovePodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.RemovePodSandboxResponse, error) {
	return &runtimeapi.RemovePodSandboxResponse{}, r.f.RemovePodSandbox(ctx, in.PodSandboxId)
}

func (r fakeRuntime) PodSandboxStatus(ctx context.Context, in *runtimeapi.PodSandboxStatusRequest, _ ...grpc.CallOption) (*runtimeapi.PodSandboxStatusResponse, error) {
	resp, err := r.f.PodSandboxStatus(ctx, in.PodSandboxId, in.Verbose)
	return resp, asGRPC(err)
}

func (r fakeRuntime) ListPodSandbox(ctx context.Context, in *runtimeapi.ListPodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.ListPodSandboxResponse, error) {
	items, err := r.f.ListPodSandbox(ctx, in.Filter)
	return &runtimeapi.ListPodSandboxResponse{Items: items}, err
}

func (r fakeRuntime) CreateContainer(ctx context.Context, in *runtimeapi.CreateContainerRequest, _ ...grpc.CallOption) (*runtimeapi.CreateContainerResponse, error) {
	id, err := r.f.CreateContainer(ctx, in.PodSandboxId, in.Config, in.SandboxConfig)
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, err
}

func (r fakeRuntime) StartContainer(ctx context.Context, in *runtimeapi.StartContainerRequest, _ ...grpc.CallOption) (*runtimeapi.StartContainerResponse, error) {
	return &runtimeapi.StartContainerResponse{}, r.f.StartContainer(ctx, in.ContainerId)
}

func (r fakeRuntime) StopContainer(ctx context.Context, in *runtimeapi.StopContainerRequest, _ ...grpc.CallOption) (*runtimeapi.StopContainerResponse, error) {
	return &runtimeapi.StopContainerResponse{}, r.f.StopContainer(ctx, in.ContainerId, in.Timeout)
}

func (r fakeRuntime) RemoveContainer(ctx context.Context, in *runtimeapi.RemoveContainerRequest, _ ...grpc.CallOption) (*runtimeapi.RemoveContainerResponse, error) {
	return &runtimeapi.RemoveContainerResponse{}, r.f.RemoveContainer(ctx, in.ContainerId)
}

func (r fakeRuntime) ListContainers(ctx context.Context, in *runtimeapi.ListContainersRequest, _ ...grpc.CallOption) (*runtimeapi.ListContainersResponse, error) {
	cts, err := r.f.ListContainers(ctx, in.Filter)
	return &runtimeapi.ListContainersResponse{Containers: cts}, err
}

func (r fakeRuntime) ContainerStatus(ctx context.Context, in *runtimeapi.ContainerStatusRequest, _ ...grpc.CallOption) (*runtimeapi.ContainerStatusResponse, error) {
	resp, err := r.f.ContainerStatus(ctx, in.ContainerId, in.Verbose)
	return resp, asGRPC(err)
}

// asGRPC gives the fake's plain "... not found" errors the gRPC code a real runtime
// answers with, so callers class them as errdefs.IsNotFound.
func asGRPC(err error) error {
	if err != nil && strings.HasSuffix(err.Error(), "not found") {
		if _, ok := status.FromError(err); !ok {
			return status.Error(codes.NotFound, err.Error())
		}
	}
	return err
}

type fakeImages struct {
	runtimeapi.ImageServiceClient // unimplemented calls
	f                             *critest.FakeImageService
}

func (i fakeImages) ImageStatus(ctx context.Context, in *runtimeapi.ImageStatusRequest, _ ...grpc.CallOption) (*runtimeapi.ImageStatusResponse, error) {
	return i.f.ImageStatus(ctx, in.Image, in.Verbose)
}

func (i fakeImages) PullImage(ctx context.Context, in *runtimeapi.PullImageRequest, _ ...grpc.CallOption) (*runtimeapi.PullImageResponse, error) {
	ref, err := i.f.PullImage(ctx, in.Image, in.Auth, in.SandboxConfig)
	return &runtimeapi.PullImageResponse{ImageRef: ref}, err
}

func (i fakeImages) ListImages(ctx context.Context, in *runtimeapi.ListImagesRequest, _ ...grpc.CallOption) (*runtimeapi.ListImagesResponse, error) {
	imgs, err := i.f.ListImages(ctx, in.Filter)
	return &runtimeapi.ListImagesResponse{Images: imgs}, err
}

func (i fakeImages) RemoveImage(ctx context.Context, in *runtimeapi.RemoveImageRequest, _ ...grpc.CallOption) (*runtimeapi.RemoveImageResponse, error) {
	return &runtimeapi.RemoveImageResponse{}, asGRPC(i.f.RemoveImage(ctx, in.Image))
}

func (r fakeRuntime) UpdateContainerResources(ctx context.Context, in *runtimeapi.UpdateContainerResourcesRequest, _ ...grpc.CallOption) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	return &runtimeapi.UpdateContainerResourcesResponse{}, r.f.UpdateContainerResources(ctx, in.ContainerId, &runtimeapi.ContainerResources{Linux: in.Linux})
}
