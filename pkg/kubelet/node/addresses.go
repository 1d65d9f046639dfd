package node

import (
	"errors"
	"fmt"
	"net"

	v1 "k8s.io/api/core/v1"
)

// Addresses returns the node's addresses: InternalIP (nodeIP, or the host's first
// non-loopback global unicast address, IPv4 first) and Hostname.
func Addresses(nodeIP, hostname string) ([]v1.NodeAddress, error) {
	ip := net.ParseIP(nodeIP)
	if nodeIP != "" && ip == nil {
		return nil, fmt.Errorf("--node-ip %q is not an IP address", nodeIP)
	}
	if ip == nil {
		var err error
		if ip, err = firstHostIP(); err != nil {
			return nil, err
		}
	}
	return []v1.NodeAddress{
		{Type: v1.NodeInternalIP, Address: ip.String()},
		{Type: v1.NodeHostName, Address: hostname},
	}, nil
}

func firstHostIP() (net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var v6 net.IP
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || !n.IP.IsGlobalUnicast() {
			continue
		}
		if n.IP.To4() != nil {
			return n.IP, nil
		}
		if v6 == nil {
			v6 = n.IP
		}
	}
	if v6 != nil {
		return v6, nil
	}
	return nil, errors.New("no non-loopback address found; set --node-ip")
}
