package dns

import (
	"bytes"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Headers of the kubelet-managed /etc/hosts, upstream's.
const (
	hostsHeader            = "# Kubernetes-managed hosts file.\n"
	hostNetworkHostsHeader = "# Kubernetes-managed hosts file (host network).\n"
)

// HostnameAndDomain is the pod's short hostname and its domain as upstream forms them:
// hostnameOverride (a DNS subdomain, no domain), else spec.hostname (a DNS label) or the
// pod name, cut to 63 characters; with a subdomain the domain is
// <subdomain>.<namespace>.svc.<clusterDomain> (with an empty cluster domain that ends in
// "svc.", as upstream's does).
func HostnameAndDomain(pod *v1.Pod, clusterDomain string) (string, string, error) {
	if o := pod.Spec.HostnameOverride; o != nil {
		if msgs := validation.IsDNS1123Subdomain(*o); len(msgs) != 0 {
			return "", "", fmt.Errorf("pod HostnameOverride %q is not a valid DNS subdomain: %s", *o, strings.Join(msgs, ";"))
		}
		h, err := truncateHostname(pod.Name, *o)
		return h, "", err
	}
	host := pod.Name
	if h := pod.Spec.Hostname; h != "" {
		if msgs := validation.IsDNS1123Label(h); len(msgs) != 0 {
			return "", "", fmt.Errorf("pod Hostname %q is not a valid DNS label: %s", h, strings.Join(msgs, ";"))
		}
		host = h
	}
	host, err := truncateHostname(pod.Name, host)
	if err != nil {
		return "", "", err
	}
	domain := ""
	if sub := pod.Spec.Subdomain; sub != "" {
		if msgs := validation.IsDNS1123Label(sub); len(msgs) != 0 {
			return "", "", fmt.Errorf("pod Subdomain %q is not a valid DNS label: %s", sub, strings.Join(msgs, ";"))
		}
		domain = fmt.Sprintf("%s.%s.svc.%s", sub, pod.Namespace, clusterDomain)
	}
	return host, domain, nil
}

// truncateHostname cuts a hostname to the kernel's 63 characters, without a trailing '-'
// or '.'.
func truncateHostname(podName, host string) (string, error) {
	const max = 63
	if len(host) <= max {
		return host, nil
	}
	cut := strings.TrimRight(host[:max], "-.")
	if cut == "" {
		return "", fmt.Errorf("hostname for pod %q was invalid: %q", podName, host)
	}
	return cut, nil
}

// KernelHostname is the name the pod's UTS namespace gets: the FQDN when the pod asks
// for it (setHostnameAsFQDN) and has a domain, which must then fit the kernel's 64
// characters, else the short hostname.
func KernelHostname(host, domain string, asFQDN *bool) (string, error) {
	const max = 64
	if domain == "" || asFQDN == nil || !*asFQDN {
		return host, nil
	}
	fqdn := host + "." + domain
	if len(fqdn) > max {
		return "", fmt.Errorf("failed to construct FQDN from pod hostname and cluster domain, FQDN %s is too long (%d characters is the max, %d characters requested)", fqdn, max, len(fqdn))
	}
	return fqdn, nil
}

// SandboxHostname is the hostname of the pod's sandbox: none for host-network pods (they
// keep the node's), else KernelHostname of HostnameAndDomain.
func SandboxHostname(pod *v1.Pod, clusterDomain string) (string, error) {
	if pod.Spec.HostNetwork {
		return "", nil
	}
	host, domain, err := HostnameAndDomain(pod, clusterDomain)
	if err != nil {
		return "", err
	}
	return KernelHostname(host, domain, pod.Spec.SetHostnameAsFQDN)
}

// ManagedHosts is the /etc/hosts of a pod on the pod network: localhost entries, a line
// per pod IP with the FQDN first when the pod has a domain, then its hostAliases.
func ManagedHosts(podIPs []string, host, domain string, aliases []v1.HostAlias) []byte {
	var b bytes.Buffer
	b.WriteString(hostsHeader)
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	for _, ip := range podIPs {
		if domain != "" {
			fmt.Fprintf(&b, "%s\t%s.%s\t%s\n", ip, host, domain, host)
		} else {
			fmt.Fprintf(&b, "%s\t%s\n", ip, host)
		}
	}
	writeAliases(&b, aliases)
	return b.Bytes()
}

// HostNetworkHosts is the /etc/hosts of a host-network pod: the node's own, under
// upstream's header, with the pod's hostAliases after it.
func HostNetworkHosts(node []byte, aliases []v1.HostAlias) []byte {
	var b bytes.Buffer
	b.WriteString(hostNetworkHostsHeader)
	b.Write(node)
	writeAliases(&b, aliases)
	return b.Bytes()
}

func writeAliases(b *bytes.Buffer, aliases []v1.HostAlias) {
	if len(aliases) == 0 {
		return
	}
	b.WriteString("\n# Entries added by HostAliases.\n")
	for _, a := range aliases {
		fmt.Fprintf(b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
	}
}
