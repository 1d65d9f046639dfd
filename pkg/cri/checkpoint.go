package cri

import (
	"context"
	"fmt"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The calls behind the kubelet API's debugging endpoints (/checkpoint and /run).

// CheckpointContainer asks the runtime to checkpoint a container into the archive at
// location. timeout (seconds) lengthens the call beyond the client's default timeout, as
// upstream's CRI client does: a shorter one is raised to that default.
func (c *Client) CheckpointContainer(ctx context.Context, id, location string, timeout int64) error {
	if timeout < 0 {
		return fmt.Errorf("CheckpointContainer requires the timeout value to be > 0")
	}
	def := int64(c.Timeout.Seconds())
	if timeout <= def {
		timeout = def
	}
	req := &runtimeapi.CheckpointContainerRequest{ContainerId: id, Location: location, Timeout: timeout}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(timeout)*time.Second)
		defer cancel()
	}
	_, err := call(ctx, c, "checkpoint_container", c.runtime.CheckpointContainer, req)
	return err
}

// RunInContainer runs cmd in a container and waits for it without a runtime timeout
// (upstream's /run passes none): it returns stdout followed by stderr, and upstream's
// error when the command exits non-zero.
func (c *Client) RunInContainer(ctx context.Context, id string, cmd []string) ([]byte, error) {
	resp, err := call(ctx, c, "exec_sync", c.runtime.ExecSync, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: cmd})
	if err != nil {
		return nil, err
	}
	out := append(resp.GetStdout(), resp.GetStderr()...)
	if code := resp.GetExitCode(); code != 0 {
		return out, &ExitError{Code: code, msg: fmt.Sprintf("command '%s' exited with %d: %s", strings.Join(cmd, " "), code, resp.GetStderr())}
	}
	return out, nil
}

// ExitError is a command that ran and exited non-zero.
type ExitError struct {
	Code int32
	msg  string
}

func (e *ExitError) Error() string { return e.msg }
