package cri

import (
	"context"
	"fmt"
	"sync"

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
		errs = append(errs, fmt.Sprintf("container runtime not ready: %s", condString(rt)))
	}
	nw := condition(st, runtimeapi.NetworkReady)
	var netErr error
	if nw == nil || !nw.Status {
		netErr = fmt.Errorf("container runtime network not ready: %s", condString(nw))
		errs = append(errs, netErr.Error())
	}
	c.network.set(netErr)
	return errs
}

// Network is the runtime network's readiness as the last Ready found it: the pod workers
// read it on each sync without a CRI call of their own, as upstream's pods read the
// runtimeState its status poll keeps.
func (c *Client) Network() *NetworkState { return &c.network }

// NetworkState is the runtime network's last known readiness. Until a first Status
// answer it is unknown, which Err reports as ready: a node whose runtime is not polled
// (no node controller) must not hold its pods back forever.
type NetworkState struct {
	mu      sync.Mutex
	err     error
	onReady []func()
}

// Err is why the runtime network is not ready, as upstream's runtimeState.networkErrors
// words it; nil when ready or not yet known.
func (n *NetworkState) Err() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

// OnReady calls f (without blocking the poll for long) each time the network becomes
// ready after not being ready.
func (n *NetworkState) OnReady(f func()) {
	n.mu.Lock()
	n.onReady = append(n.onReady, f)
	n.mu.Unlock()
}

func (n *NetworkState) set(err error) {
	n.mu.Lock()
	back := n.err != nil && err == nil
	n.err = err
	fs := n.onReady
	n.mu.Unlock()
	if back {
		for _, f := range fs {
			f()
		}
	}
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
func condString(c *runtimeapi.RuntimeCondition) string {
	if c == nil {
		return "<nil>" // upstream formats the missing condition's nil pointer
	}
	return fmt.Sprintf("%s=%t reason:%s message:%s", c.Type, c.Status, c.Reason, c.Message)
}
