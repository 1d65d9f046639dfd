package cri

import "k8s.io/apimachinery/pkg/types"

// ChangeOp is a mutation made through this client.
type ChangeOp int

// The mutations a Change reports.
const (
	SandboxCreated ChangeOp = iota
	// SandboxRunFailed: RunPodSandbox failed, and the runtime may have kept a sandbox
	// anyway (containerd keeps one whose network set-up failed, and holds its name: a
	// retry of the same attempt is refused until the kubelet sees and replaces it).
	SandboxRunFailed
	// SandboxStopping and ContainerStopping come before the stop call: the exit the call
	// causes is then ours, and is read after the call (SandboxStopped / ContainerStopped,
	// reported whether or not the call succeeded).
	SandboxStopping
	SandboxStopped
	SandboxRemoved
	ContainerCreated
	ContainerStarted
	ContainerStopping
	ContainerStopped
	ContainerRemoved
)

// Change is one mutation of the runtime made through this client, reported after the call
// returns, so that a cache of the runtime's state can read its own writes without relisting.
type Change struct {
	Op ChangeOp
	ID string
	// PodUID and SandboxID are known on creation only.
	PodUID    types.UID
	SandboxID string
}

// OnChange sets the function told of every mutation (set once, before any call is made).
func (c *Client) OnChange(fn func(Change)) { c.observer = fn }

func (c *Client) changed(ch Change) {
	if c.observer != nil {
		c.observer(ch)
	}
}

// changedUnlessFailed reports a removal that happened (or had happened already:
// NotFound); other errors leave the object as it was, as far as the caller knows.
func (c *Client) changedUnlessFailed(err error, ch Change) {
	if err == nil || ignoreNotFound(err) == nil {
		c.changed(ch)
	}
}
