package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// proc finds a control-plane process the bed started, by name.
func (b *Bed) proc(name string) (int, *Proc, error) {
	for i, p := range b.procs {
		if p.Name == name {
			return i, p, nil
		}
	}
	return 0, nil, fmt.Errorf("testbed: no process %q", name)
}

// StopAPIServer stops kube-apiserver (an outage); StartAPIServer brings it back.
func (b *Bed) StopAPIServer() error {
	_, p, err := b.proc("kube-apiserver")
	if err != nil {
		return err
	}
	return p.Stop(10 * time.Second)
}

// StartAPIServer starts kube-apiserver again with the same arguments and waits until it
// is ready.
func (b *Bed) StartAPIServer() error {
	i, old, err := b.proc("kube-apiserver")
	if err != nil {
		return err
	}
	if !old.Exited() {
		return fmt.Errorf("testbed: kube-apiserver is running")
	}
	p, err := b.start(old.Name, old.cmd.Path, old.cmd.Args[1:], nil)
	if err != nil {
		return err
	}
	b.procs[i] = p
	return b.waitAPIReady(p, 2*time.Minute)
}

// cniConfig is the bed's CNI network config, which containerd watches.
func (b *Bed) cniConfig() string {
	return filepath.Join(b.containerdDir(), "net.d", "10-minikubelet.conflist")
}

// BreakPodNetwork moves the bed's CNI config away: containerd then reports
// NetworkReady=false (NetworkPluginNotReady) and can make no pod sandbox on the pod
// network until RestorePodNetwork.
func (b *Bed) BreakPodNetwork() error {
	return os.Rename(b.cniConfig(), b.cniConfig()+".away")
}

// RestorePodNetwork puts the CNI config back (a no-op if it is in place).
func (b *Bed) RestorePodNetwork() error {
	err := os.Rename(b.cniConfig()+".away", b.cniConfig())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
