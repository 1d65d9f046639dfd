package cri

import (
	"context"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Ready returns why the runtime is not ready to run pods, in the upstream kubelet's words
// (these become the node's Ready condition message); nil means ready.
func (c *Client) Ready(ctx context.Context) []string {
	st, err := c.Status(ctx)
	if err != nil {
		return []string{"container runtime is down"}
	}
	var errs []string
	rt := condition(st, runtimeapi.RuntimeReady)
	if rt == nil || !rt.Status {
		errs = append(errs, fmt.Sprintf("container runtime not ready: %s", condString(runtimeapi.RuntimeReady, rt)))
	}
	nw := condition(st, runtimeapi.NetworkReady)
	if nw == nil || !nw.Status {
		errs = append(errs, fmt.Sprintf("container runtime network not ready: %s", condString(runtimeapi.NetworkReady, nw)))
	}
	return errs
}

// RuntimeVersion returns "name://version" as the node reports it, e.g. "containerd://1.6.20".
func (c *Client) RuntimeVersion(ctx context.Context) (string, error) {
	v, err := c.Version(ctx)
	if err != nil {
		return "", err
	}
	return v.GetRuntimeName() + "://" + v.GetRuntimeVersion(), nil
}

func condition(st *runtimeapi.RuntimeStatus, t string) *runtimeapi.RuntimeCondition {
	for _, c := range st.GetConditions() {
		if c.GetType() == t {
			return c
		}
	}
	return nil
}

// condString formats like the upstream kubelet's RuntimeCondition.String.
func condString(t string, c *runtimeapi.RuntimeCondition) string {
	if c == nil {
		return fmt.Sprintf("%s=false reason: message:%s condition not reported", t, t)
	}
	return fmt.Sprintf("%s=%t reason:%s message:%s", c.Type, c.Status, c.Reason, c.Message)
}
