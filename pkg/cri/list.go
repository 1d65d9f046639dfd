package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The runtime's objects as it lists them, for readers that need no PodState (the kubelet
// API's metrics, stats and logs).

// ListSandboxes returns the sandboxes filter selects (all when nil).
func (c *Client) ListSandboxes(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	resp, err := call(ctx, c, "list_podsandbox", c.runtime.ListPodSandbox, &runtimeapi.ListPodSandboxRequest{Filter: filter})
	return resp.GetItems(), err
}

// ListContainers returns the containers filter selects (all when nil).
func (c *Client) ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	resp, err := call(ctx, c, "list_containers", c.runtime.ListContainers, &runtimeapi.ListContainersRequest{Filter: filter})
	return resp.GetContainers(), err
}

// ContainerStatus returns a container's status.
func (c *Client) ContainerStatus(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	resp, err := call(ctx, c, "container_status", c.runtime.ContainerStatus, &runtimeapi.ContainerStatusRequest{ContainerId: id})
	return resp.GetStatus(), err
}
