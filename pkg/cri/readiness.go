package cri

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Ready returns why the runtime is not ready to run pods, in the upstream kubelet's words
// (these become the node's Ready condition message); nil means ready.
//
// When the runtime is ready, its handlers and features are kept too (Handlers), as
// upstream's updateRuntimeUp keeps them in its runtimeState only then.
func (c *Client) Ready(ctx context.Context) []string {
	resp, err := call(ctx, c, "status", c.runtime.Status, &runtimeapi.StatusRequest{})
	if err != nil {
		return []string{"container runtime is down"}
	}
	st := resp.GetStatus()
	var errs []string
	rt := condition(st, runtimeapi.RuntimeReady)
	if rt == nil || !rt.Status {
		errs = append(errs, fmt.Sprintf("container runtime not ready: %s", condString(rt)))
	} else {
		c.handlers.set(resp.GetRuntimeHandlers(), resp.GetFeatures())
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

// Handlers is the runtime's handlers and features as the last ready Status listed them.
func (c *Client) Handlers() *HandlerState { return &c.handlers }

// HandlerSupportsUserNamespaces says whether the runtime handler (RuntimeClass handler, ""
// for the default) runs pods in user namespaces, with upstream's answers
// (kubelet_getters.go HandlerSupportsUserNamespaces): no handlers listed (a runtime older
// than the field, containerd 1.6) means no, a handler not listed is an error. Until a
// first ready Status (the node controller polls it) the runtime is asked now, so a pod
// synced before the first poll is not refused for want of an answer.
func (c *Client) HandlerSupportsUserNamespaces(ctx context.Context, handler string) (bool, error) {
	if !c.handlers.Known() {
		c.Ready(ctx)
	}
	return c.handlers.SupportsUserNamespaces(handler)
}

// RuntimeHandler is one handler of the runtime and what it supports (CRI RuntimeHandler,
// upstream's kubecontainer.RuntimeHandler).
type RuntimeHandler struct {
	Name                    string // "" is the default handler
	RecursiveReadOnlyMounts bool
	UserNamespaces          bool
}

// RuntimeFeatures are the runtime's own features (CRI RuntimeFeatures).
type RuntimeFeatures struct {
	SupplementalGroupsPolicy  bool
	UserNamespacesHostNetwork bool
	MountOptions              bool
}

// HandlerState is the runtime's handlers (sorted by name, as upstream's runtimeState) and
// features as last reported; unknown until a first ready Status.
type HandlerState struct {
	mu       sync.Mutex
	known    bool
	handlers []RuntimeHandler
	features *RuntimeFeatures
}

// Known says whether a ready Status has been read yet.
func (h *HandlerState) Known() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.known
}

// Handlers is the runtime's handlers; empty for a runtime that lists none.
func (h *HandlerState) Handlers() []RuntimeHandler {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.handlers)
}

// Features is the runtime's features; nil when it reports none.
func (h *HandlerState) Features() *RuntimeFeatures {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.features == nil {
		return nil
	}
	f := *h.features
	return &f
}

// SupportsUserNamespaces answers as upstream's HandlerSupportsUserNamespaces.
func (h *HandlerState) SupportsUserNamespaces(handler string) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.handlers) == 0 {
		return false, nil // a runtime older than the field
	}
	for _, rh := range h.handlers {
		if rh.Name == handler {
			return rh.UserNamespaces, nil
		}
	}
	return false, fmt.Errorf("the handler %q is not known", handler)
}

func (h *HandlerState) set(list []*runtimeapi.RuntimeHandler, f *runtimeapi.RuntimeFeatures) {
	handlers := make([]RuntimeHandler, 0, len(list))
	for _, rh := range list {
		handlers = append(handlers, RuntimeHandler{Name: rh.GetName(),
			RecursiveReadOnlyMounts: rh.GetFeatures().GetRecursiveReadOnlyMounts(),
			UserNamespaces:          rh.GetFeatures().GetUserNamespaces()})
	}
	slices.SortFunc(handlers, func(a, b RuntimeHandler) int { return strings.Compare(a.Name, b.Name) })
	var features *RuntimeFeatures
	if f != nil {
		features = &RuntimeFeatures{SupplementalGroupsPolicy: f.GetSupplementalGroupsPolicy(),
			UserNamespacesHostNetwork: f.GetUserNamespacesHostNetwork(), MountOptions: f.GetMountOptions()}
	}
	h.mu.Lock()
	h.known, h.handlers, h.features = true, handlers, features
	h.mu.Unlock()
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
