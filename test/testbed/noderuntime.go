package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// NodeRuntime is a runtime of one node's own, beside the bed's and of the same kind
// (containerd, or crio on a CRI-O bed): a node agent removes every pod its runtime has
// that it does not know, so two agents running at once need a runtime each. It shares the
// bed's CNI network (same bridge and address pool, so pods of every node reach each
// other) and registry configuration, and gets the bed's images.
type NodeRuntime struct {
	Name       string
	Containerd *Proc // the runtime's process (crio on a CRI-O bed)
	b          *Bed
}

func (b *Bed) nodeRuntimesDir() string { return filepath.Join(b.Dir, "runtimes") }

func (r *NodeRuntime) dir() string { return filepath.Join(r.b.nodeRuntimesDir(), r.Name) }

// Socket is the runtime's CRI socket path.
func (r *NodeRuntime) Socket() string { return filepath.Join(r.dir(), "containerd.sock") }

// crio is the node's runtime as a crio (on a CRI-O bed).
func (r *NodeRuntime) crio() crioInstance {
	return crioInstance{dir: r.dir(), socket: r.Socket(), proc: "rt-crio-" + r.Name}
}

// Endpoint is the runtime's CRI endpoint (unix://...).
func (r *NodeRuntime) Endpoint() string { return "unix://" + r.Socket() }

// StartNodeRuntime starts a runtime for node name, with the bed's images in it.
func (b *Bed) StartNodeRuntime(name string) (*NodeRuntime, error) {
	r := &NodeRuntime{Name: name, b: b}
	if b.opts.Runtime == RuntimeCRIO {
		if err := b.writeCRIOConfig(r.crio()); err != nil {
			return nil, err
		}
		if err := r.Start(); err != nil {
			return nil, err
		}
		return r, pullImages(r.Endpoint(), b.Images)
	}
	for _, sub := range []string{"root", "state", "opt"} {
		if err := os.MkdirAll(filepath.Join(r.dir(), sub), 0o755); err != nil {
			return nil, err
		}
	}
	if err := b.writeContainerdConfigFile(r.dir(), r.Socket(), false); err != nil {
		return nil, err
	}
	if err := r.Start(); err != nil {
		return nil, err
	}
	if err := b.importImages(r.Socket(), b.Images); err != nil {
		return nil, err
	}
	return r, nil
}

// Start starts the runtime (again, after Stop) and waits until it answers CRI.
func (r *NodeRuntime) Start() error {
	if r.b.opts.Runtime == RuntimeCRIO {
		p, err := r.b.startCRIOProc(r.crio())
		if p != nil {
			r.Containerd = p
		}
		return err
	}
	p, err := r.b.startContainerdProc("containerd-rt-"+r.Name, filepath.Join(r.dir(), "config.toml"))
	if err != nil {
		return err
	}
	r.Containerd = p
	return waitCRI(r.Endpoint(), p)
}

// Stop stops the runtime only; running containers survive (their shims or conmons go
// on), as when the runtime of a real node goes down.
func (r *NodeRuntime) Stop() error { return r.Containerd.Stop(20 * time.Second) }

// cleanupNodeRuntimes tears down every node runtime of this bed (or of a dead earlier
// run): pods through CRI (starting the runtime on its old state if it is not running, so
// network namespaces are released), then the runtime and its shims.
func (b *Bed) cleanupNodeRuntimes() {
	entries, _ := os.ReadDir(b.nodeRuntimesDir())
	for _, e := range entries {
		r := &NodeRuntime{Name: e.Name(), b: b}
		if _, err := os.Stat(r.crio().config()); err == nil {
			b.cleanupCRIOInstance(r.crio(), nil)
			continue
		}
		if _, err := os.Stat(filepath.Join(r.dir(), "config.toml")); err != nil {
			continue
		}
		killRecorded(b.Dir, "containerd-rt-"+r.Name)
		if err := r.Start(); err != nil {
			b.opts.Log("testbed: could not start node runtime %s for cleanup: %v", r.Name, err)
		} else {
			removeAllSandboxes(r.Endpoint())
			_ = r.Stop()
		}
		killShimsOf(r.Socket())
	}
}

// String names the runtime for messages.
func (r *NodeRuntime) String() string {
	if r.b.opts.Runtime == RuntimeCRIO {
		return fmt.Sprintf("crio of node %s", r.Name)
	}
	return fmt.Sprintf("containerd of node %s", r.Name)
}
