package podworker

import (
	"os"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/kubelet/dns"
)

// etcHosts is the node's hosts file, the base of host-network pods' /etc/hosts.
var etcHosts = "/etc/hosts"

// podSandboxOptions are the sandbox options with the pod's resolver config, formed as
// upstream forms it for each new sandbox (re-reading the node's resolver file, so edits
// reach new pods); its events (lines cut to the resolver's limits, no cluster DNS) are
// recorded here.
func (w *Workers) podSandboxOptions(pod *v1.Pod) (cri.SandboxOptions, error) {
	o := w.sandboxOptions()
	host, err := dns.ReadResolvConf(w.cfg.DNS.ResolvConf)
	if err != nil {
		return o, err
	}
	var events []dns.Event
	o.DNS, events = w.cfg.DNS.PodDNS(pod, host)
	for _, e := range events {
		ref := ContainerRef(pod, nil)
		if e.OnNode {
			ref = &v1.ObjectReference{Kind: "Node", Name: w.cfg.NodeName, UID: types.UID(w.cfg.NodeName)}
		}
		w.cfg.Recorder.Event(ref, v1.EventTypeWarning, e.Reason, e.Message)
	}
	return o, nil
}

// hostsFile is the kubelet-managed /etc/hosts: for a host-network pod the node's own with
// the pod's hostAliases added, else the pod's names and IPs and its hostAliases.
func (w *Workers) hostsFile(pod *v1.Pod, podIPs []string) ([]byte, error) {
	if pod.Spec.HostNetwork {
		node, err := os.ReadFile(etcHosts)
		if err != nil {
			return nil, err
		}
		return dns.HostNetworkHosts(node, pod.Spec.HostAliases), nil
	}
	host, domain, err := dns.HostnameAndDomain(pod, w.cfg.DNS.ClusterDomain)
	if err != nil {
		return nil, err
	}
	return dns.ManagedHosts(podIPs, host, domain, pod.Spec.HostAliases), nil
}
