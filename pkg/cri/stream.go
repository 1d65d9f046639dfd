package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Streams are the streams an exec or attach session carries (a TTY has no stderr).
type Streams struct {
	Stdin, Stdout, Stderr, TTY bool
}

// Exec asks the runtime to prepare a session running cmd in a container; it returns the
// URL of the runtime's streaming server that serves it.
func (c *Client) Exec(ctx context.Context, id string, cmd []string, s Streams) (string, error) {
	resp, err := call(ctx, c, "exec", c.runtime.Exec, &runtimeapi.ExecRequest{
		ContainerId: id, Cmd: cmd, Tty: s.TTY, Stdin: s.Stdin, Stdout: s.Stdout, Stderr: s.Stderr})
	return resp.GetUrl(), err
}

// Attach asks the runtime to prepare a session attached to a container's main process; it
// returns the streaming URL.
func (c *Client) Attach(ctx context.Context, id string, s Streams) (string, error) {
	resp, err := call(ctx, c, "attach", c.runtime.Attach, &runtimeapi.AttachRequest{
		ContainerId: id, Tty: s.TTY, Stdin: s.Stdin, Stdout: s.Stdout, Stderr: s.Stderr})
	return resp.GetUrl(), err
}

// PortForward asks the runtime to prepare a port-forward session into a sandbox's network
// namespace; it returns the streaming URL.
func (c *Client) PortForward(ctx context.Context, sandboxID string, ports []int32) (string, error) {
	resp, err := call(ctx, c, "port_forward", c.runtime.PortForward, &runtimeapi.PortForwardRequest{PodSandboxId: sandboxID, Port: ports})
	return resp.GetUrl(), err
}
