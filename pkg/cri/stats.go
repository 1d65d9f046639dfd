package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListContainerStats returns the CPU, memory and writable-layer usage of the containers
// filter selects (all when nil).
func (c *Client) ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	resp, err := call(ctx, c, "list_container_stats", c.runtime.ListContainerStats, &runtimeapi.ListContainerStatsRequest{Filter: filter})
	return resp.GetStats(), err
}

// ListPodSandboxStats returns the pod-level usage (the pod cgroup's CPU and memory, the
// network namespace's interfaces) of the ready sandboxes filter selects (all when nil).
func (c *Client) ListPodSandboxStats(ctx context.Context, filter *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error) {
	resp, err := call(ctx, c, "list_podsandbox_stats", c.runtime.ListPodSandboxStats, &runtimeapi.ListPodSandboxStatsRequest{Filter: filter})
	return resp.GetStats(), err
}

// ImageFsInfo returns the usage of the filesystems that hold images (and, where the
// runtime says so, containers' writable layers).
func (c *Client) ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	return call(ctx, c, "image_fs_info", c.images.ImageFsInfo, &runtimeapi.ImageFsInfoRequest{})
}
