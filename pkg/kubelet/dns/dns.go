// Package dns forms what a pod sees of names: the resolver configuration the runtime
// writes to its /etc/resolv.conf, its hostname, and the kubelet-managed /etc/hosts, as
// the upstream kubelet v1.37 does (pkg/kubelet/network/dns, kubelet_pods.go). All of it is
// pure except ReadResolvConf; events are returned for the caller to record.
package dns

import (
	"fmt"
	"net"
	"strings"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	netutils "k8s.io/utils/net"
)

// Limits of glibc's resolver, as the API server validates dnsConfig against them
// (pkg/apis/core/validation) and the kubelet cuts the merged lines to them.
const (
	MaxNameservers = 3
	MaxSearchPaths = 32
	MaxSearchChars = 2048 // the search line, spaces included
	// maxSearchLen is a DNS subdomain's length: longer search paths make some resolvers
	// (glibc 2.28) abort, so they are dropped.
	maxSearchLen = 253
)

// Event reasons, upstream's.
const (
	ReasonDNSConfigForming         = "DNSConfigForming"
	ReasonMissingClusterDNS        = "MissingClusterDNS"
	ReasonCheckLimitsForResolvConf = "CheckLimitsForResolvConf"
)

// Event is a Warning the kubelet records: on the pod, or on the node when OnNode.
type Event struct {
	OnNode          bool
	Reason, Message string
}

// Resolver is what a resolv.conf holds.
type Resolver struct{ Servers, Searches, Options []string }

// Node is the node's DNS setup.
type Node struct {
	// ClusterDNS are the nameservers of ClusterFirst pods; none makes them fall back to
	// Default, with MissingClusterDNS events.
	ClusterDNS []net.IP
	// ClusterDomain (may be empty, upstream's default) roots the cluster search paths
	// and the pods' FQDNs.
	ClusterDomain string
	// ResolvConf is the node's resolver file; "" gives Default pods the node's loopback.
	ResolvConf string
	// NodeIPs pick 127.0.0.1 and/or ::1 for that loopback.
	NodeIPs []net.IP
}

// ParseClusterDNS parses clusterDNS entries as upstream does (leading zeros allowed);
// entries that are not IPs are returned apart: upstream logs and skips them.
func ParseClusterDNS(entries []string) (ips []net.IP, invalid []string) {
	for _, e := range entries {
		if ip := netutils.ParseIPSloppy(e); ip != nil {
			ips = append(ips, ip)
		} else {
			invalid = append(invalid, e)
		}
	}
	return ips, invalid
}

// missingClusterDNS is upstream's message, with its quoting.
var missingClusterDNS = fmt.Sprintf("kubelet does not have ClusterDNS IP configured and cannot create Pod using %q policy. Falling back to %q policy.", v1.DNSClusterFirst, v1.DNSDefault)

// PodDNS is the pod's resolver configuration given the node's resolver file content host,
// with the events upstream records while forming it. None starts empty; Default (and
// ClusterFirst on the host network) starts from host; ClusterFirst(WithHostNet) gets only
// the cluster nameservers, the cluster search paths before the host's, and ndots:5. The
// pod's dnsConfig is merged on top, then the lines are cut to the resolver's limits.
func (n Node) PodDNS(pod *v1.Pod, host Resolver) (*runtimeapi.DNSConfig, []Event) {
	var events []Event
	out := &runtimeapi.DNSConfig{Servers: clone(host.Servers), Searches: clone(host.Searches), Options: clone(host.Options)}
	cluster := false
	switch pod.Spec.DNSPolicy {
	case v1.DNSNone:
		out = &runtimeapi.DNSConfig{}
	case v1.DNSDefault:
	case v1.DNSClusterFirst:
		cluster = !pod.Spec.HostNetwork
	default: // ClusterFirstWithHostNet, and (as upstream) a policy the API would refuse
		cluster = true
	}
	switch {
	case cluster && len(n.ClusterDNS) > 0:
		out.Servers = make([]string, len(n.ClusterDNS))
		for i, ip := range n.ClusterDNS {
			out.Servers[i] = ip.String()
		}
		out.Searches = n.clusterSearches(pod.Namespace, out.Searches)
		out.Options = []string{"ndots:5"}
	case pod.Spec.DNSPolicy != v1.DNSNone:
		if cluster {
			events = append(events, Event{OnNode: true, Reason: ReasonMissingClusterDNS, Message: missingClusterDNS},
				Event{Reason: ReasonMissingClusterDNS, Message: fmt.Sprintf("pod: %q. %s", podDesc(pod), missingClusterDNS)})
		}
		if n.ResolvConf == "" {
			// No resolver file: the node's own loopback, i.e. no lookups at all.
			out.Servers, out.Searches = n.loopbacks(), []string{"."}
		}
	}
	if d := pod.Spec.DNSConfig; d != nil {
		out.Servers = unique(append(out.Servers, d.Nameservers...))
		out.Searches = unique(append(out.Searches, d.Searches...))
		out.Options = mergeOptions(out.Options, d.Options)
	}
	var cut []Event
	out.Servers, cut = fitServers(out.Servers, cut)
	out.Searches, cut = fitSearches(out.Searches, cut)
	return out, append(events, cut...)
}

// clusterSearches puts <ns>.svc.<domain>, svc.<domain> and <domain> before the host's.
func (n Node) clusterSearches(namespace string, host []string) []string {
	if n.ClusterDomain == "" {
		return host
	}
	d := n.ClusterDomain
	return unique(append([]string{namespace + ".svc." + d, "svc." + d, d}, host...))
}

func (n Node) loopbacks() []string {
	var out []string
	for _, ip := range n.NodeIPs {
		if netutils.IsIPv6(ip) {
			out = append(out, "::1")
		} else {
			out = append(out, "127.0.0.1")
		}
	}
	if len(out) == 0 {
		out = []string{"127.0.0.1"}
	}
	return out
}

// mergeOptions lays the pod's options over base: an option whose name (before the first
// ':' in base, the whole name in the pod's) is already there replaces it in place, others
// are appended. Upstream builds the same set through a map, so its order varies.
func mergeOptions(base []string, pod []v1.PodDNSConfigOption) []string {
	out := make([]string, 0, len(base)+len(pod))
	at := map[string]int{}
	put := func(name, value string) {
		opt := name
		if value != "" {
			opt += ":" + value
		}
		if i, ok := at[name]; ok {
			out[i] = opt
			return
		}
		at[name] = len(out)
		out = append(out, opt)
	}
	for _, o := range base {
		name, value, _ := strings.Cut(o, ":")
		put(name, value)
	}
	for _, o := range pod {
		value := ""
		if o.Value != nil {
			value = *o.Value
		}
		put(o.Name, value)
	}
	return out
}

func fitServers(s []string, events []Event) ([]string, []Event) {
	if len(s) <= MaxNameservers {
		return s, events
	}
	s = s[:MaxNameservers]
	return s, append(events, Event{Reason: ReasonDNSConfigForming,
		Message: "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: " + strings.Join(s, " ")})
}

// fitSearches keeps the first 32 paths, drops those longer than a DNS subdomain, then
// drops paths from the end until the line fits in 2048 characters.
func fitSearches(s []string, events []Event) ([]string, []Event) {
	cut := len(s) > MaxSearchPaths
	if cut {
		s = s[:MaxSearchPaths]
	}
	kept := make([]string, 0, len(s))
	for _, p := range s {
		if len(p) > maxSearchLen {
			cut = true
			continue
		}
		kept = append(kept, p)
	}
	for len(strings.Join(kept, " ")) > MaxSearchChars {
		kept, cut = kept[:len(kept)-1], true
	}
	if !cut {
		return s, events
	}
	return kept, append(events, Event{Reason: ReasonDNSConfigForming,
		Message: "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: " + strings.Join(kept, " ")})
}

// unique keeps the first of equal strings.
func unique(in []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func clone(s []string) []string { return append([]string(nil), s...) }

// podDesc is upstream's format.Pod: name_namespace(uid).
func podDesc(pod *v1.Pod) string {
	return fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
}
