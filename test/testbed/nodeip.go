package testbed

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
)

// nodeIPMarker, in a bed's folder, says the bed uses UpstreamNodeIP on lo; the address is
// removed when the last bed using it is cleaned up (beds of other names may run at once).
const nodeIPMarker = "uses-node-ip"

// AddProxyableNodeIP puts UpstreamNodeIP on lo (it stays on this machine). The API
// server's node proxy (/api/v1/nodes/<name>/proxy/...) refuses loopback addresses
// ("address not allowed"), so a node reached through it must report this address
// (--node-ip=UpstreamNodeIP); its kubelet API listens on every address.
func (b *Bed) AddProxyableNodeIP() error {
	if err := os.WriteFile(filepath.Join(b.Dir, nodeIPMarker), nil, 0o644); err != nil {
		return err
	}
	if out, err := exec.Command("ip", "addr", "replace", UpstreamNodeIP+"/32", "dev", "lo").CombinedOutput(); err != nil {
		return fmt.Errorf("add %s to lo: %v: %s", UpstreamNodeIP, err, out)
	}
	return nil
}

// releaseNodeIP drops this bed's claim on UpstreamNodeIP and removes the address from lo
// when no other bed's folder claims it.
func (b *Bed) releaseNodeIP() {
	if _, err := os.Stat(filepath.Join(b.Dir, nodeIPMarker)); errors.Is(err, fs.ErrNotExist) {
		return
	}
	_ = os.Remove(filepath.Join(b.Dir, nodeIPMarker))
	others, _ := filepath.Glob(filepath.Join(filepath.Dir(b.Dir), "*", nodeIPMarker))
	if len(others) == 0 {
		_ = exec.Command("ip", "addr", "del", UpstreamNodeIP+"/32", "dev", "lo").Run()
	}
}
