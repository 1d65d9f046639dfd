package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListContainerStats returns the CPU, memory and writable-layer usage of the containers
// filter selects (all when nil).
func (c *Client) ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	done, err := c.statsTurn(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	resp, err := call(ctx, c, "list_container_stats", c.runtime.ListContainerStats, &runtimeapi.ListContainerStatsRequest{Filter: filter})
	return resp.GetStats(), err
}

// ListPodSandboxStats returns the pod-level usage (the pod cgroup's CPU and memory, the
// network namespace's interfaces) of the ready sandboxes filter selects (all when nil).
func (c *Client) ListPodSandboxStats(ctx context.Context, filter *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error) {
	done, err := c.statsTurn(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	resp, err := call(ctx, c, "list_podsandbox_stats", c.runtime.ListPodSandboxStats, &runtimeapi.ListPodSandboxStatsRequest{Filter: filter})
	return resp.GetStats(), err
}

// ImageFsInfo returns the usage of the filesystems that hold images (and, where the
// runtime says so, containers' writable layers).
func (c *Client) ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	return call(ctx, c, "image_fs_info", c.images.ImageFsInfo, &runtimeapi.ImageFsInfoRequest{})
}

// statsTurn waits until no other stats call is in flight (or ctx ends) and returns the
// function that ends this one's turn. The runtime's stats calls go one at a time:
// containerd 1.6 before containerd#8130 (Debian's 1.6.20 among them) writes its
// per-container CPU samples without a lock, and two stats calls at once (a
// /metrics/resource scrape beside the eviction manager's summary) crash it with
// "concurrent map read and map write". The upstream kubelet, which reads these figures
// from cAdvisor unless PodAndContainerStatsFromCRI is on, never makes such calls.
func (c *Client) statsTurn(ctx context.Context) (func(), error) {
	select {
	case c.stats <- struct{}{}:
		return func() { <-c.stats }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
