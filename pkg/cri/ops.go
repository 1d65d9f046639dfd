package cri

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RunSandbox creates and starts a sandbox with the runtime handler ("" = the default); it
// returns its ID.
func (c *Client) RunSandbox(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	resp, err := callWithin(ctx, c, "run_podsandbox", 2*c.Timeout, c.runtime.RunPodSandbox, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: handler})
	uid := types.UID(cfg.GetMetadata().GetUid())
	if err == nil {
		c.changed(Change{Op: SandboxCreated, ID: resp.GetPodSandboxId(), PodUID: uid})
	} else {
		c.changed(Change{Op: SandboxRunFailed, PodUID: uid})
	}
	return resp.GetPodSandboxId(), err
}

// SandboxStatus returns a sandbox's status.
func (c *Client) SandboxStatus(ctx context.Context, id string) (*runtimeapi.PodSandboxStatus, error) {
	resp, err := call(ctx, c, "podsandbox_status", c.runtime.PodSandboxStatus, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	return resp.GetStatus(), err
}

// StopSandbox stops a sandbox (its containers too) and releases its network.
func (c *Client) StopSandbox(ctx context.Context, id string) error {
	c.changed(Change{Op: SandboxStopping, ID: id})
	_, err := call(ctx, c, "stop_podsandbox", c.runtime.StopPodSandbox, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
	c.changed(Change{Op: SandboxStopped, ID: id})
	return ignoreNotFound(err)
}

// RemoveSandbox removes a stopped sandbox and its containers.
func (c *Client) RemoveSandbox(ctx context.Context, id string) error {
	_, err := call(ctx, c, "remove_podsandbox", c.runtime.RemovePodSandbox, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
	c.changedUnlessFailed(err, Change{Op: SandboxRemoved, ID: id})
	return ignoreNotFound(err)
}

// CreateContainer creates a container in a sandbox; it returns its ID.
func (c *Client) CreateContainer(ctx context.Context, sandboxID string, cfg *runtimeapi.ContainerConfig, sbCfg *runtimeapi.PodSandboxConfig) (string, error) {
	resp, err := call(ctx, c, "create_container", c.runtime.CreateContainer, &runtimeapi.CreateContainerRequest{
		PodSandboxId: sandboxID, Config: cfg, SandboxConfig: sbCfg})
	if err == nil {
		c.changed(Change{Op: ContainerCreated, ID: resp.GetContainerId(), SandboxID: sandboxID, PodUID: types.UID(sbCfg.GetMetadata().GetUid())})
	}
	return resp.GetContainerId(), err
}

// StartContainer starts a created container.
func (c *Client) StartContainer(ctx context.Context, id string) error {
	_, err := call(ctx, c, "start_container", c.runtime.StartContainer, &runtimeapi.StartContainerRequest{ContainerId: id})
	// A failed start may still have moved the container (to exited): look again either way.
	c.changed(Change{Op: ContainerStarted, ID: id})
	return err
}

// StopContainer stops a container, giving it timeout seconds after SIGTERM.
func (c *Client) StopContainer(ctx context.Context, id string, timeout int64) error {
	c.changed(Change{Op: ContainerStopping, ID: id})
	_, err := callWithin(ctx, c, "stop_container", c.Timeout+time.Duration(timeout)*time.Second, c.runtime.StopContainer, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: timeout})
	c.changed(Change{Op: ContainerStopped, ID: id})
	return ignoreNotFound(err)
}

// UpdateContainerResources applies new resources to a running container (an in-place
// resize).
func (c *Client) UpdateContainerResources(ctx context.Context, id string, r *runtimeapi.LinuxContainerResources) error {
	_, err := call(ctx, c, "update_container_resources", c.runtime.UpdateContainerResources,
		&runtimeapi.UpdateContainerResourcesRequest{ContainerId: id, Linux: r})
	return err
}

// RemoveContainer removes a container.
func (c *Client) RemoveContainer(ctx context.Context, id string) error {
	_, err := call(ctx, c, "remove_container", c.runtime.RemoveContainer, &runtimeapi.RemoveContainerRequest{ContainerId: id})
	c.changedUnlessFailed(err, Change{Op: ContainerRemoved, ID: id})
	return ignoreNotFound(err)
}

// ExecSync runs cmd in a container and waits up to timeout; it returns the combined output
// and the exit code.
func (c *Client) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, int32, error) {
	secs := int64(timeout / time.Second)
	if timeout > 0 && secs == 0 {
		secs = 1
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+2*time.Second)
	defer cancel()
	resp, err := call(ctx, c, "exec_sync", c.runtime.ExecSync, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: secs})
	if err != nil {
		return nil, -1, err
	}
	return append(resp.Stdout, resp.Stderr...), resp.ExitCode, nil
}

// ReopenContainerLog makes the runtime write a container's log to a fresh file.
func (c *Client) ReopenContainerLog(ctx context.Context, id string) error {
	_, err := call(ctx, c, "reopen_container_log", c.runtime.ReopenContainerLog, &runtimeapi.ReopenContainerLogRequest{ContainerId: id})
	return err
}
