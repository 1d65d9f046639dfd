package dns

import (
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func str(s string) *string { return &s }

// The expected values are the upstream kubelet v1.37's (pkg/kubelet/network/dns and its
// tests): the same node, host resolver and pods give the same lines and events.
func TestPodDNS(t *testing.T) {
	node := Node{ClusterDNS: []net.IP{net.ParseIP("10.96.0.10")}, ClusterDomain: "k8s.test", ResolvConf: "/etc/resolv.conf"}
	noDNS := Node{ClusterDomain: "k8s.test", ResolvConf: "/etc/resolv.conf"}
	noFile := Node{ClusterDomain: "k8s.test"}
	host := Resolver{Servers: []string{"192.0.2.53"}, Searches: []string{"node.test"}, Options: []string{"timeout:2"}}
	podCfg := &v1.PodDNSConfig{Nameservers: []string{"10.0.0.11"}, Searches: []string{"my.domain"},
		Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: str("3")}, {Name: "debug"}}}
	clusterSearch := []string{"ns.svc.k8s.test", "svc.k8s.test", "k8s.test"}
	missing := `kubelet does not have ClusterDNS IP configured and cannot create Pod using "ClusterFirst" policy. Falling back to "Default" policy.`
	missingEvents := []Event{{OnNode: true, Reason: "MissingClusterDNS", Message: missing},
		{Reason: "MissingClusterDNS", Message: `pod: "p_ns(u1)". ` + missing}}
	many := make([]string, 32)
	for i := range many {
		many[i] = fmt.Sprintf("s%d.test", i)
	}

	for _, tc := range []struct {
		name        string
		node        Node
		host        Resolver
		policy      v1.DNSPolicy
		hostNetwork bool
		cfg         *v1.PodDNSConfig
		want        *runtimeapi.DNSConfig
		events      []Event
	}{
		{name: "ClusterFirst", node: node, host: host, policy: v1.DNSClusterFirst,
			want: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: append(clusterSearch, "node.test"), Options: []string{"ndots:5"}}},
		{name: "ClusterFirst on the host network is Default", node: node, host: host, policy: v1.DNSClusterFirst, hostNetwork: true,
			want: &runtimeapi.DNSConfig{Servers: []string{"192.0.2.53"}, Searches: []string{"node.test"}, Options: []string{"timeout:2"}}},
		{name: "ClusterFirstWithHostNet", node: node, host: host, policy: v1.DNSClusterFirstWithHostNet, hostNetwork: true,
			want: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: append(clusterSearch, "node.test"), Options: []string{"ndots:5"}}},
		{name: "ClusterFirstWithHostNet off the host network", node: node, host: host, policy: v1.DNSClusterFirstWithHostNet,
			want: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: append(clusterSearch, "node.test"), Options: []string{"ndots:5"}}},
		{name: "Default", node: node, host: host, policy: v1.DNSDefault,
			want: &runtimeapi.DNSConfig{Servers: []string{"192.0.2.53"}, Searches: []string{"node.test"}, Options: []string{"timeout:2"}}},
		{name: "None without dnsConfig", node: node, host: host, policy: v1.DNSNone, want: &runtimeapi.DNSConfig{}},
		{name: "None with dnsConfig", node: node, host: host, policy: v1.DNSNone, cfg: podCfg,
			want: &runtimeapi.DNSConfig{Servers: []string{"10.0.0.11"}, Searches: []string{"my.domain"}, Options: []string{"ndots:3", "debug"}}},
		{name: "ClusterFirst with dnsConfig", node: node, host: host, policy: v1.DNSClusterFirst, cfg: podCfg,
			want: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10", "10.0.0.11"}, Searches: append(clusterSearch, "node.test", "my.domain"), Options: []string{"ndots:3", "debug"}}},
		{name: "Default with dnsConfig", node: node, host: host, policy: v1.DNSDefault, cfg: podCfg,
			want: &runtimeapi.DNSConfig{Servers: []string{"192.0.2.53", "10.0.0.11"}, Searches: []string{"node.test", "my.domain"}, Options: []string{"timeout:2", "ndots:3", "debug"}}},
		{name: "dnsConfig duplicates are merged", node: node, host: host, policy: v1.DNSClusterFirst,
			cfg:  &v1.PodDNSConfig{Nameservers: []string{"10.96.0.10"}, Searches: []string{"svc.k8s.test", "node.test"}, Options: []v1.PodDNSConfigOption{{Name: "ndots"}}},
			want: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: append(clusterSearch, "node.test"), Options: []string{"ndots"}}},
		{name: "host search paths equal to the cluster's count once", node: node, policy: v1.DNSClusterFirst,
			host: Resolver{Searches: []string{"k8s.test", "node.test"}},
			want: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: append(clusterSearch, "node.test"), Options: []string{"ndots:5"}}},
		{name: "no cluster domain: only the host's search paths", node: Node{ClusterDNS: node.ClusterDNS, ResolvConf: "/r"}, host: host, policy: v1.DNSClusterFirst,
			want: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"node.test"}, Options: []string{"ndots:5"}}},
		{name: "several cluster nameservers, IPv6 too", node: Node{ClusterDNS: []net.IP{net.ParseIP("10.96.0.10"), net.ParseIP("fd00::a")}, ClusterDomain: "k8s.test"}, policy: v1.DNSClusterFirst,
			want: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10", "fd00::a"}, Searches: clusterSearch, Options: []string{"ndots:5"}}},
		{name: "ClusterFirst without cluster DNS falls back to Default", node: noDNS, host: host, policy: v1.DNSClusterFirst,
			want:   &runtimeapi.DNSConfig{Servers: []string{"192.0.2.53"}, Searches: []string{"node.test"}, Options: []string{"timeout:2"}},
			events: missingEvents},
		{name: "ClusterFirstWithHostNet without cluster DNS", node: noDNS, host: host, policy: v1.DNSClusterFirstWithHostNet, hostNetwork: true,
			want:   &runtimeapi.DNSConfig{Servers: []string{"192.0.2.53"}, Searches: []string{"node.test"}, Options: []string{"timeout:2"}},
			events: missingEvents},
		{name: "a policy the API would refuse is ClusterFirst", node: node, host: host, policy: "Bogus",
			want: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: append(clusterSearch, "node.test"), Options: []string{"ndots:5"}}},
		{name: "no resolver file: the node's loopback", node: noFile, policy: v1.DNSDefault,
			want: &runtimeapi.DNSConfig{Servers: []string{"127.0.0.1"}, Searches: []string{"."}}},
		{name: "no resolver file, no cluster DNS", node: noFile, policy: v1.DNSClusterFirst,
			want: &runtimeapi.DNSConfig{Servers: []string{"127.0.0.1"}, Searches: []string{"."}}, events: missingEvents},
		{name: "no resolver file, dual-stack node", node: Node{NodeIPs: []net.IP{net.ParseIP("fd00::1"), net.ParseIP("10.0.0.1")}}, policy: v1.DNSDefault,
			cfg:  &v1.PodDNSConfig{Searches: []string{"my.domain"}},
			want: &runtimeapi.DNSConfig{Servers: []string{"::1", "127.0.0.1"}, Searches: []string{".", "my.domain"}, Options: []string{}}},
		{name: "no resolver file, None", node: noFile, policy: v1.DNSNone, cfg: &v1.PodDNSConfig{Nameservers: []string{"10.0.0.11"}},
			want: &runtimeapi.DNSConfig{Servers: []string{"10.0.0.11"}, Options: []string{}}},
		{name: "four nameservers are cut to three", node: node, host: host, policy: v1.DNSClusterFirst,
			cfg:    &v1.PodDNSConfig{Nameservers: []string{"10.0.0.11", "10.0.0.12", "10.0.0.13"}},
			want:   &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10", "10.0.0.11", "10.0.0.12"}, Searches: append(clusterSearch, "node.test"), Options: []string{"ndots:5"}},
			events: []Event{{Reason: "DNSConfigForming", Message: "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 10.96.0.10 10.0.0.11 10.0.0.12"}}},
		{name: "search paths beyond 32 are cut", node: node, host: host, policy: v1.DNSClusterFirst,
			cfg:  &v1.PodDNSConfig{Searches: many},
			want: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: append(append(clusterSearch, "node.test"), many[:28]...), Options: []string{"ndots:5"}},
			events: []Event{{Reason: "DNSConfigForming", Message: "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: " +
				strings.Join(append(append(clusterSearch, "node.test"), many[:28]...), " ")}}},
		{name: "both limits", node: node, policy: v1.DNSClusterFirst,
			cfg:  &v1.PodDNSConfig{Nameservers: []string{"10.0.0.11", "10.0.0.12", "10.0.0.13"}, Searches: many},
			want: &runtimeapi.DNSConfig{Servers: []string{"10.96.0.10", "10.0.0.11", "10.0.0.12"}, Searches: append(clusterSearch, many[:29]...), Options: []string{"ndots:5"}},
			events: []Event{
				{Reason: "DNSConfigForming", Message: "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 10.96.0.10 10.0.0.11 10.0.0.12"},
				{Reason: "DNSConfigForming", Message: "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: " + strings.Join(append(clusterSearch, many[:29]...), " ")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"},
				Spec: v1.PodSpec{DNSPolicy: tc.policy, HostNetwork: tc.hostNetwork, DNSConfig: tc.cfg}}
			got, events := tc.node.PodDNS(pod, tc.host)
			if !reflect.DeepEqual(norm(got), norm(tc.want)) {
				t.Errorf("config\n got %v\nwant %v", got, tc.want)
			}
			if !reflect.DeepEqual(events, tc.events) {
				t.Errorf("events\n got %+v\nwant %+v", events, tc.events)
			}
		})
	}
}

// norm treats nil and empty lines alike (the runtime writes neither).
func norm(c *runtimeapi.DNSConfig) [3][]string {
	f := func(s []string) []string {
		if len(s) == 0 {
			return nil
		}
		return s
	}
	return [3][]string{f(c.Servers), f(c.Searches), f(c.Options)}
}

// Upstream's formDNSSearchFitsLimits cases: overlong paths dropped, 32 paths kept, the
// line kept at 2048 characters and cut from the end beyond.
func TestFitSearches(t *testing.T) {
	line2048 := []string{strings.Repeat("A", 128)} // 128 + 15 * (127 + 1 space) = 2048
	for range 15 {
		line2048 = append(line2048, strings.Repeat("A", 127))
	}
	n := func(k int) []string {
		out := []string{}
		for i := range k {
			out = append(out, fmt.Sprint(i))
		}
		return out
	}
	msg := "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: "
	for _, tc := range []struct {
		name     string
		in, want []string
		event    bool
	}{
		{"few", []string{"a", "b"}, []string{"a", "b"}, false},
		{"a path over 253 characters", []string{"a", strings.Repeat("B", 254), "c"}, []string{"a", "c"}, true},
		{"a path of 253 characters", []string{"a", strings.Repeat("B", 253)}, []string{"a", strings.Repeat("B", 253)}, false},
		{"2048 characters", line2048, line2048, false},
		{"2050 characters", append(append([]string{}, line2048...), "B"), line2048, true},
		{"32 paths", n(32), n(32), false},
		{"33 paths", n(33), n(32), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, events := fitSearches(tc.in, nil)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			var want []Event
			if tc.event {
				want = []Event{{Reason: "DNSConfigForming", Message: msg + strings.Join(tc.want, " ")}}
			}
			if !reflect.DeepEqual(events, want) {
				t.Errorf("events %+v, want %+v", events, want)
			}
		})
	}
}

// Upstream's mergeDNSOptions: the pod's options replace those of the same name; its order
// is a map's, minikubelet keeps the first appearance's place.
func TestMergeOptions(t *testing.T) {
	for _, tc := range []struct {
		base []string
		pod  []v1.PodDNSConfigOption
		want []string
	}{
		{nil, nil, []string{}},
		{[]string{"ndots:5", "debug"}, nil, []string{"ndots:5", "debug"}},
		{[]string{"ndots:5"}, []v1.PodDNSConfigOption{{Name: "ndots", Value: str("2")}, {Name: "edns0"}}, []string{"ndots:2", "edns0"}},
		{[]string{"ndots:5"}, []v1.PodDNSConfigOption{{Name: "ndots"}}, []string{"ndots"}},
		{[]string{"ndots:5"}, []v1.PodDNSConfigOption{{Name: "ndots", Value: str("")}}, []string{"ndots"}},
		{[]string{"ndots:"}, nil, []string{"ndots"}},
		{[]string{"attempts:2", "attempts:3"}, nil, []string{"attempts:3"}},
		{[]string{"a:1"}, []v1.PodDNSConfigOption{{Name: "a:2"}}, []string{"a:1", "a:2"}}, // names differ, as upstream
		{nil, []v1.PodDNSConfigOption{{Name: "x", Value: str("1")}, {Name: "x", Value: str("2")}}, []string{"x:2"}},
	} {
		if got := mergeOptions(tc.base, tc.pod); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("mergeOptions(%q, %v) = %q, want %q", tc.base, tc.pod, got, tc.want)
		}
	}
}

func TestParseClusterDNS(t *testing.T) {
	ips, bad := ParseClusterDNS([]string{"10.96.0.10", "fd00::a", "010.096.000.011", "dns.example", "", "10.96.0.300"})
	var got []string
	for _, ip := range ips {
		got = append(got, ip.String())
	}
	if want := []string{"10.96.0.10", "fd00::a", "10.96.0.11"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ips %q, want %q", got, want)
	}
	if want := []string{"dns.example", "", "10.96.0.300"}; !reflect.DeepEqual(bad, want) {
		t.Errorf("invalid %q, want %q", bad, want)
	}
}
