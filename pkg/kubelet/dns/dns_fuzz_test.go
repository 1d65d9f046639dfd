package dns

import (
	"net"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FuzzPodDNS: whatever the node's resolver file and the pod's dnsConfig, forming the
// pod's DNS never panics, stays within the resolver's limits, and merges options as
// upstream's map does (each name once, the pod's value winning).
func FuzzPodDNS(f *testing.F) {
	f.Add("nameserver 1.2.3.4\nsearch a b\noptions ndots:1 timeout:2", "ClusterFirst", "k8s.test", "10.0.0.1 10.0.0.2", "x.test y.test", "ndots=3 edns0 a:b=", false)
	f.Add("nameserver\n", "None", "", "", "", "=", true)
	f.Add("search "+strings.Repeat("a ", 40), "Default", "d", "1 2 3 4 5", strings.Repeat(strings.Repeat("b", 300)+" ", 9), "x x=1 x=", false)
	f.Fuzz(func(t *testing.T, resolv, policy, domain, servers, searches, options string, hostNet bool) {
		host, _ := ParseResolvConf(resolv)
		var opts []v1.PodDNSConfigOption
		for _, o := range strings.Fields(options) {
			name, value, ok := strings.Cut(o, "=")
			opt := v1.PodDNSConfigOption{Name: name}
			if ok {
				opt.Value = &value
			}
			opts = append(opts, opt)
		}
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: v1.PodSpec{
			DNSPolicy: v1.DNSPolicy(policy), HostNetwork: hostNet,
			DNSConfig: &v1.PodDNSConfig{Nameservers: strings.Fields(servers), Searches: strings.Fields(searches), Options: opts}}}
		n := Node{ClusterDNS: []net.IP{net.ParseIP("10.96.0.10")}, ClusterDomain: domain, ResolvConf: "/r"}
		cfg, _ := n.PodDNS(pod, host)
		if len(cfg.Servers) > MaxNameservers || len(cfg.Searches) > MaxSearchPaths || len(strings.Join(cfg.Searches, " ")) > MaxSearchChars {
			t.Fatalf("over the limits: %d servers, %d searches", len(cfg.Servers), len(cfg.Searches))
		}
		for _, s := range cfg.Searches {
			if len(s) > maxSearchLen {
				t.Fatalf("search path of %d characters", len(s))
			}
		}
		checkMerge(t, host.Options, opts)
	})
}

// checkMerge compares mergeOptions with upstream's model: a map from name to value.
func checkMerge(t *testing.T, base []string, pod []v1.PodDNSConfigOption) {
	want := map[string]string{}
	for _, o := range base {
		name, value, _ := strings.Cut(o, ":")
		want[name] = value
	}
	for _, o := range pod {
		want[o.Name] = ""
		if o.Value != nil {
			want[o.Name] = *o.Value
		}
	}
	got := mergeOptions(base, pod)
	if len(got) != len(want) {
		t.Fatalf("mergeOptions(%q, %v) = %q: %d options, want %d", base, pod, got, len(got), len(want))
	}
	for name, value := range want {
		opt := name
		if value != "" {
			opt += ":" + value
		}
		found := false
		for _, g := range got {
			found = found || g == opt
		}
		if !found {
			t.Fatalf("mergeOptions(%q, %v) = %q: no %q", base, pod, got, opt)
		}
	}
}
