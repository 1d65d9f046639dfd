package cri

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// RuntimeConfig asks the runtime for its configuration (its cgroup driver).
func (c *Client) RuntimeConfig(ctx context.Context) (*runtimeapi.RuntimeConfigResponse, error) {
	return call(ctx, c, "runtime_config", c.runtime.RuntimeConfig, &runtimeapi.RuntimeConfigRequest{})
}

// runtimeConfigBackoff: as upstream, RuntimeConfig is asked up to three times, 2 s apart,
// in case the runtime is still starting; Unimplemented is final at once.
var runtimeConfigBackoff = wait.Backoff{Duration: 2 * time.Second, Factor: 1, Steps: 3}

// CgroupDriver returns the cgroup driver to use with this runtime: the one it reports,
// else configured, logged as upstream's getCgroupDriverFromCRI logs it. A runtime that
// keeps failing RuntimeConfig fails start-up, as upstream's.
func (c *Client) CgroupDriver(ctx context.Context, configured string) (string, error) {
	var resp *runtimeapi.RuntimeConfigResponse
	var err error
	// Out of attempts, err keeps the last failure.
	_ = wait.ExponentialBackoffWithContext(ctx, runtimeConfigBackoff, func(ctx context.Context) (bool, error) {
		resp, err = c.RuntimeConfig(ctx)
		return err == nil || errdefs.IsNotImplemented(err), nil
	})
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	driver, fromRuntime, derr := DecideCgroupDriver(configured, resp, err)
	logger := klog.FromContext(ctx)
	switch {
	case derr != nil:
		return "", derr
	case fromRuntime:
		logger.Info("Using cgroup driver setting received from the CRI runtime", "cgroupDriver", driver)
	case err != nil:
		logger.Info("CRI implementation should be updated to support RuntimeConfig. Falling back to using cgroupDriver from kubelet config.")
	}
	return driver, nil
}

// DecideCgroupDriver is upstream's choice of cgroup driver (getCgroupDriverFromCRI), given
// the runtime's RuntimeConfig answer resp or error err: the runtime's driver when it names
// one, whatever configured says (fromRuntime); configured when the runtime does not
// implement RuntimeConfig or reports no Linux configuration; an error for any other
// failure or a driver it does not know.
func DecideCgroupDriver(configured string, resp *runtimeapi.RuntimeConfigResponse, err error) (driver string, fromRuntime bool, _ error) {
	switch {
	case errdefs.IsNotImplemented(err):
		return configured, false, nil
	case err != nil:
		return "", false, fmt.Errorf("asking the runtime for its cgroup driver (RuntimeConfig): %w", err)
	case resp.GetLinux() == nil:
		// An unset Linux config would read as systemd (the enum's zero): not an answer.
		return configured, false, nil
	}
	switch d := resp.GetLinux().GetCgroupDriver(); d {
	case runtimeapi.CgroupDriver_SYSTEMD:
		return SystemdDriver, true, nil
	case runtimeapi.CgroupDriver_CGROUPFS:
		return CgroupfsDriver, true, nil
	default:
		return "", false, fmt.Errorf("runtime returned an unknown cgroup driver %d", d)
	}
}
