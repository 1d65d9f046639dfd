package cluster

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// The cluster's network, all on this machine:
//
//	machine: bridge <Bridge>, <Subnet>.1; nothing from the bridge is forwarded to any other
//	         interface, and the machine answers the nodes nothing but replies
//	node:    eth0 <Subnet>.<2+i> (a veth into the bridge), no default route; routes to the
//	         other nodes' pod CIDRs via those nodes, and the service CIDR on eth0 (so that
//	         kube-proxy's DNAT has a route to start from; what it does not rewrite dies at
//	         the machine's guard)
//	pods:    CNI bridge cni0 on the node's pod CIDR, routes to the pod and service CIDRs
//	         and the nodes' subnet only, the bandwidth plugin in the chain

const (
	// PodSubnet and ServiceSubnet are kubeadm's networking settings (kind's pod subnet).
	PodSubnet     = "10.244.0.0/16"
	ServiceSubnet = "10.96.0.0/16"
)

func run(name string, args ...string) error {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// guardRules keep the cluster's packets on its bridge: no forwarding between the bridge
// and other interfaces, and nothing on the machine answers the nodes but replies to its
// own connections (kubectl to the API server).
func (c *Cluster) guardRules() [][]string {
	br := c.opts.Bridge
	return [][]string{
		{"FORWARD", "-i", br, "!", "-o", br, "-j", "DROP"},
		{"FORWARD", "-o", br, "!", "-i", br, "-j", "DROP"},
		{"INPUT", "-i", br, "-j", "REJECT"},
		{"INPUT", "-i", br, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
	}
}

// setUpBridge makes the bridge and the guard (rules inserted in reverse, so the accept of
// replies comes before the reject).
func (c *Cluster) setUpBridge() error {
	br := c.opts.Bridge
	if err := run("ip", "link", "add", br, "type", "bridge"); err != nil {
		return err
	}
	if err := run("ip", "addr", "add", c.hostIP()+"/24", "dev", br); err != nil {
		return err
	}
	if err := run("ip", "link", "set", br, "up"); err != nil {
		return err
	}
	return testbed.InsertRules(c.guardRules())
}

func (c *Cluster) tearDownBridge() {
	testbed.DeleteRules(c.guardRules())
	// The nodes' links: gone with their namespaces, unless the kernel still holds a dead
	// node's namespace (seen: a control plane's, minutes after all its processes ended).
	ifaces, _ := net.Interfaces()
	for _, i := range ifaces {
		if c.isNodeLink(i.Name) {
			_ = run("ip", "link", "del", i.Name)
		}
	}
	if _, err := net.InterfaceByName(c.opts.Bridge); err == nil {
		_ = run("ip", "link", "del", c.opts.Bridge)
	}
}

// hostIP is the machine's address on the bridge; nodes count up from .2.
func (c *Cluster) hostIP() string { return c.opts.Subnet + ".1" }

// nodeLink names node index's end of its veth on the machine.
func (c *Cluster) nodeLink(index int) string {
	name := fmt.Sprintf("mkc%d-%s", index, c.opts.Name)
	if len(name) > 15 {
		name = name[:15]
	}
	return name
}

// isNodeLink says whether a link of the machine is one of this cluster's node links.
func (c *Cluster) isNodeLink(name string) bool {
	for i := 0; i < 100; i++ {
		if name == c.nodeLink(i) {
			return true
		}
	}
	return false
}

// NodeLinks lists the links of the machine that are this cluster's node links.
func (c *Cluster) NodeLinks() []string {
	var out []string
	ifaces, _ := net.Interfaces()
	for _, i := range ifaces {
		if c.isNodeLink(i.Name) {
			out = append(out, i.Name)
		}
	}
	return out
}

// plugNode gives a booted node its eth0 on the bridge.
func (c *Cluster) plugNode(n *Node, index int) error {
	host := c.nodeLink(index)
	if err := run("ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", strconv.Itoa(n.Pid())); err != nil {
		return err
	}
	if err := run("ip", "link", "set", host, "master", c.opts.Bridge, "up"); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "addr", "add", n.IP + "/24", "dev", "eth0"},
		{"ip", "link", "set", "eth0", "up"},
		{"ip", "route", "add", ServiceSubnet, "dev", "eth0"},
		{"sysctl", "-qw", "net.ipv4.ip_forward=1"},
		// Services whose backends share the client's bridge need bridged packets to pass
		// kube-proxy's rules (upstream's network plugin requirements).
		{"sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"},
	} {
		if _, err := n.Run(args[0], args[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// cniConfig is a node's CNI network: the node's pod CIDR on the bridge cni0, routes to
// pods, services and the nodes only (replies to NodePort clients, which kube-proxy
// masquerades to the sending node's address), host ports and the bandwidth annotations.
func cniConfig(podCIDR, nodeSubnet string) string {
	return fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "minikubelet-cluster",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": %q}, {"dst": %q}, {"dst": %q}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "bandwidth", "capabilities": {"bandwidth": true}}
  ]
}
`, podCIDR, PodSubnet, ServiceSubnet, nodeSubnet)
}

// routePods writes each node's CNI network for its pod CIDR and routes every other node's
// pod CIDR through that node (what kindnet does in a kind cluster).
func (c *Cluster) routePods(cidrs map[string]string) error {
	for _, n := range c.Nodes {
		if err := n.WriteFile("/etc/cni/net.d/10-minikubelet-cluster.conflist", []byte(cniConfig(cidrs[n.Name], c.opts.Subnet+".0/24")), 0o644); err != nil {
			return err
		}
		for _, other := range c.Nodes {
			if other == n {
				continue
			}
			if _, err := n.Run("ip", "route", "replace", cidrs[other.Name], "via", other.IP, "dev", "eth0"); err != nil {
				return err
			}
		}
	}
	return nil
}
