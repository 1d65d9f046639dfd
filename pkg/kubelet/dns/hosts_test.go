package dns

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Upstream's GeneratePodHostNameAndDomain cases, with a cluster domain and without.
func TestHostnameAndDomain(t *testing.T) {
	for _, tc := range []struct {
		name, pod, hostname, subdomain string
		override                       *string
		domain                         string
		wantHost, wantDomain, err      string
	}{
		{name: "pod name", pod: "test-pod", domain: "k8s.test", wantHost: "test-pod"},
		{name: "hostname", pod: "test-pod", hostname: "custom", domain: "k8s.test", wantHost: "custom"},
		{name: "subdomain", pod: "test-pod", subdomain: "sub", domain: "k8s.test", wantHost: "test-pod", wantDomain: "sub.default.svc.k8s.test"},
		{name: "hostname and subdomain", pod: "test-pod", hostname: "custom", subdomain: "sub", domain: "k8s.test", wantHost: "custom", wantDomain: "sub.default.svc.k8s.test"},
		{name: "no cluster domain", pod: "test-pod", subdomain: "sub", wantHost: "test-pod", wantDomain: "sub.default.svc."},
		{name: "override wins", pod: "test-pod", hostname: "custom", subdomain: "sub", override: str("over.ride"), domain: "k8s.test", wantHost: "over.ride"},
		{name: "invalid override", pod: "test-pod", override: str("Invalid-Hostname-!"), err: `pod HostnameOverride "Invalid-Hostname-!" is not a valid DNS subdomain: `},
		{name: "long pod name", pod: strings.Repeat("a", 62) + "-b", wantHost: strings.Repeat("a", 62)},
		{name: "invalid hostname", pod: "test-pod", hostname: "Invalid-Hostname-!", err: `pod Hostname "Invalid-Hostname-!" is not a valid DNS label: `},
		{name: "hostname over 63", pod: "test-pod", hostname: strings.Repeat("a", 64), err: "must be no more than 63 characters"},
		{name: "invalid subdomain", pod: "test-pod", subdomain: "invalid_subdomain", err: `pod Subdomain "invalid_subdomain" is not a valid DNS label: `},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: tc.pod, Namespace: "default"},
				Spec: v1.PodSpec{Hostname: tc.hostname, Subdomain: tc.subdomain, HostnameOverride: tc.override}}
			host, domain, err := HostnameAndDomain(pod, tc.domain)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || host != tc.wantHost || domain != tc.wantDomain {
				t.Errorf("got %q %q %v, want %q %q", host, domain, err, tc.wantHost, tc.wantDomain)
			}
		})
	}
}

// Upstream's GetNodenameForKernel cases.
func TestKernelHostname(t *testing.T) {
	yes, no := true, false
	long := "1234567.1234567.1234567.1234567.1234567.1234567.1234567" // 55: FQDN 71
	for _, tc := range []struct {
		host, domain string
		fqdn         *bool
		want, err    string
	}{
		{"test.pod.hostname", "", &yes, "test.pod.hostname", ""},
		{"test.pod.hostname", "svc.subdomain.local", &no, "test.pod.hostname", ""},
		{"test.pod.hostname", "svc.subdomain.local", nil, "test.pod.hostname", ""},
		{"test.pod.hostname", "svc.subdomain.local", &yes, "test.pod.hostname.svc.subdomain.local", ""},
		{"1234567.1234567", long, &no, "1234567.1234567", ""},
		{"1234567.1234567", long, &yes, "", "failed to construct FQDN from pod hostname and cluster domain, FQDN 1234567.1234567." + long + " is too long (64 characters is the max, 71 characters requested)"},
		{strings.Repeat("a", 30), strings.Repeat("b", 33), &yes, strings.Repeat("a", 30) + "." + strings.Repeat("b", 33), ""}, // 64
	} {
		got, err := KernelHostname(tc.host, tc.domain, tc.fqdn)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) {
			t.Errorf("KernelHostname(%q, %q) = %q, %v; want %q, %q", tc.host, tc.domain, got, err, tc.want, tc.err)
		}
	}
}

func TestSandboxHostname(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "ns"},
		Spec: v1.PodSpec{Subdomain: "web", SetHostnameAsFQDN: new(true)}}
	if h, err := SandboxHostname(pod, "k8s.test"); h != "web-0.web.ns.svc.k8s.test" || err != nil {
		t.Errorf("FQDN: %q %v", h, err)
	}
	pod.Spec.HostNetwork = true
	if h, err := SandboxHostname(pod, "k8s.test"); h != "" || err != nil {
		t.Errorf("host network: %q %v", h, err)
	}
}

const localhost = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"

// Upstream's managedHostsFileContent and nodeHostsFileContent cases.
func TestHostsFiles(t *testing.T) {
	aliases := []v1.HostAlias{{IP: "123.45.67.89", Hostnames: []string{"foo", "bar", "baz"}}, {IP: "456.78.90.123", Hostnames: []string{"park", "doo", "boo"}}}
	aliasLines := "\n# Entries added by HostAliases.\n123.45.67.89\tfoo\tbar\tbaz\n456.78.90.123\tpark\tdoo\tboo\n"
	for _, tc := range []struct{ got, want string }{
		{string(ManagedHosts([]string{"123.45.67.89"}, "podFoo", "", nil)),
			"# Kubernetes-managed hosts file.\n" + localhost + "123.45.67.89\tpodFoo\n"},
		{string(ManagedHosts([]string{"203.0.113.1"}, "podFoo", "domainFoo", aliases[:1])),
			"# Kubernetes-managed hosts file.\n" + localhost + "203.0.113.1\tpodFoo.domainFoo\tpodFoo\n\n# Entries added by HostAliases.\n123.45.67.89\tfoo\tbar\tbaz\n"},
		{string(ManagedHosts([]string{"203.0.113.1", "fd00::6"}, "podFoo", "domainFoo", aliases)),
			"# Kubernetes-managed hosts file.\n" + localhost + "203.0.113.1\tpodFoo.domainFoo\tpodFoo\nfd00::6\tpodFoo.domainFoo\tpodFoo\n" + aliasLines},
		{string(ManagedHosts(nil, "podFoo", "", nil)), "# Kubernetes-managed hosts file.\n" + localhost},
		{string(HostNetworkHosts([]byte("# node\n"+localhost+"12.34.56.78\tanother.domain\n"), nil)),
			"# Kubernetes-managed hosts file (host network).\n# node\n" + localhost + "12.34.56.78\tanother.domain\n"},
		{string(HostNetworkHosts([]byte("# node\n"+localhost), aliases)),
			"# Kubernetes-managed hosts file (host network).\n# node\n" + localhost + aliasLines},
	} {
		if tc.got != tc.want {
			t.Errorf("got\n%s\nwant\n%s", tc.got, tc.want)
		}
	}
}
