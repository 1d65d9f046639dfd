package testbed

import (
	"fmt"
	"os/exec"
)

// AddProxyableNodeIP puts UpstreamNodeIP on lo (it stays on this machine). The API
// server's node proxy (/api/v1/nodes/<name>/proxy/...) refuses loopback addresses
// ("address not allowed"), so a node reached through it must report this address
// (--node-ip=UpstreamNodeIP); its kubelet API listens on every address.
func AddProxyableNodeIP() error {
	if out, err := exec.Command("ip", "addr", "replace", UpstreamNodeIP+"/32", "dev", "lo").CombinedOutput(); err != nil {
		return fmt.Errorf("add %s to lo: %v: %s", UpstreamNodeIP, err, out)
	}
	return nil
}
