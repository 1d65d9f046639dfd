package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// The cluster DNS of these nodes is an address in the bed's service range, which nothing
// serves or routes: the tests read what pods receive, they never resolve through it.
const (
	dnsClusterIP  = "10.96.0.10"
	dnsDomain     = "k8s.test"
	dnsNodeResolv = "nameserver 127.0.0.1\nsearch node.test lab.test\noptions timeout:2 attempts:3\n"
	// dnsScript prints what the pod sees of names, sections split by "==", and stays up
	// (a pod that has exited may have lost its IP from the status by then).
	dnsScript = `trap "exit 0" TERM; cat /etc/resolv.conf; echo ==; cat /etc/hosts; echo ==; hostname; echo "$HOSTNAME"; sleep 3600 & wait`
)

const managedHosts = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
	"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"

// dnsCase is one pod and the files it must see; hosts and hostname get the running pod.
type dnsCase struct {
	name     string
	change   func(*v1.Pod)
	resolv   string
	hosts    func(p *v1.Pod) string
	hostname func(p *v1.Pod) string
	event    string // a Warning the pod must get: "reason: message"
}

// startDNSNode starts a node with the cluster DNS flags and a resolver file of its own
// (the node's search domains and options; its only nameserver is the pod's loopback).
func startDNSNode(t *testing.T, name string, flags ...string) string {
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte(dnsNodeResolv), 0o644); err != nil {
		t.Fatal(err)
	}
	k := startKubelet(t, name, append([]string{"--resolv-conf=" + resolv}, flags...)...)
	watchNode(ctxFor(t, time.Minute), t, k.NodeName, isReady)
	return k.NodeName
}

// TestDNSPolicies: every dnsPolicy, dnsConfig merged, hostname/subdomain/hostnameOverride,
// setHostnameAsFQDN, hostAliases and host-network pods; /etc/resolv.conf, /etc/hosts and
// the hostname as the upstream kubelet writes them (make test-upstream runs this too).
func TestDNSPolicies(t *testing.T) {
	node := startDNSNode(t, "dns", "--cluster-dns="+dnsClusterIP, "--cluster-domain="+dnsDomain)
	nodeHosts, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	nodeName, _ := os.Hostname()
	aliases := []v1.HostAlias{{IP: "10.96.1.1", Hostnames: []string{"one.test", "uno"}}, {IP: "10.96.1.2", Hostnames: []string{"two.test"}}}
	aliasLines := "\n# Entries added by HostAliases.\n10.96.1.1\tone.test\tuno\n10.96.1.2\ttwo.test\n"
	clusterSearch := "search default.svc.k8s.test svc.k8s.test k8s.test node.test lab.test\n"
	podHosts := func(names string) func(*v1.Pod) string {
		return func(p *v1.Pod) string { return managedHosts + p.Status.PodIP + "\t" + names + "\n" }
	}
	podName := func(p *v1.Pod) string { return p.Name }
	hostNet := func(p *v1.Pod) { p.Spec.HostNetwork = true; p.Spec.HostAliases = aliases }
	nodeFiles := func(*v1.Pod) string {
		return "# Kubernetes-managed hosts file (host network).\n" + string(nodeHosts) + aliasLines
	}
	cases := []dnsCase{
		{name: "cluster-first", resolv: clusterSearch + "nameserver 10.96.0.10\noptions ndots:5\n", hostname: podName,
			hosts: func(p *v1.Pod) string { return managedHosts + p.Status.PodIP + "\t" + p.Name + "\n" }},
		{name: "cluster-first-merged", change: func(p *v1.Pod) {
			p.Spec.DNSConfig = &v1.PodDNSConfig{Nameservers: []string{"10.96.0.11", dnsClusterIP}, Searches: []string{"my.test", "k8s.test"},
				Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: ptr("2")}, {Name: "edns0"}}}
		}, resolv: strings.TrimSuffix(clusterSearch, "\n") + " my.test\nnameserver 10.96.0.10\nnameserver 10.96.0.11\noptions ndots:2 edns0\n"},
		{name: "default", change: func(p *v1.Pod) { p.Spec.DNSPolicy = v1.DNSDefault },
			resolv: "search node.test lab.test\nnameserver 127.0.0.1\noptions timeout:2 attempts:3\n"},
		{name: "default-merged", change: func(p *v1.Pod) {
			p.Spec.DNSPolicy = v1.DNSDefault
			p.Spec.DNSConfig = &v1.PodDNSConfig{Searches: []string{"my.test"}, Options: []v1.PodDNSConfigOption{{Name: "timeout", Value: ptr("5")}, {Name: "rotate"}}}
		}, resolv: "search node.test lab.test my.test\nnameserver 127.0.0.1\noptions timeout:5 attempts:3 rotate\n"},
		{name: "none", change: func(p *v1.Pod) {
			p.Spec.DNSPolicy = v1.DNSNone
			p.Spec.DNSConfig = &v1.PodDNSConfig{Nameservers: []string{"10.96.0.53"}, Searches: []string{"a.test", "b.test"},
				Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: ptr("1")}}}
		}, resolv: "search a.test b.test\nnameserver 10.96.0.53\noptions ndots:1\n"},
		{name: "subdomain", change: func(p *v1.Pod) {
			p.Spec.Hostname, p.Spec.Subdomain, p.Spec.HostAliases = "web-0", "web", aliases
		}, hosts: func(p *v1.Pod) string {
			return managedHosts + p.Status.PodIP + "\tweb-0.web.default.svc.k8s.test\tweb-0\n" + aliasLines
		}, hostname: func(*v1.Pod) string { return "web-0" }},
		{name: "fqdn", change: func(p *v1.Pod) {
			p.Spec.Hostname, p.Spec.Subdomain, p.Spec.SetHostnameAsFQDN = "web-1", "web", ptr(true)
		}, hosts: podHosts("web-1.web.default.svc.k8s.test\tweb-1"), hostname: func(*v1.Pod) string { return "web-1.web.default.svc.k8s.test" }},
		{name: "hostname-override", change: func(p *v1.Pod) {
			p.Spec.Hostname, p.Spec.Subdomain, p.Spec.HostnameOverride = "web-2", "web", ptr("custom.name")
		}, hosts: podHosts("custom.name"), hostname: func(*v1.Pod) string { return "custom.name" }},
		{name: "host-network", change: hostNet, resolv: "search node.test lab.test\nnameserver 127.0.0.1\noptions timeout:2 attempts:3\n",
			hosts: nodeFiles, hostname: func(*v1.Pod) string { return nodeName }},
		{name: "host-network-cluster", change: func(p *v1.Pod) { hostNet(p); p.Spec.DNSPolicy = v1.DNSClusterFirstWithHostNet },
			resolv: clusterSearch + "nameserver 10.96.0.10\noptions ndots:5\n", hosts: nodeFiles},
	}
	cases = append(cases, dnsLimitCases()...)
	runDNSCases(t, node, cases)
}

// dnsLimitCases: a dnsConfig that takes the merged lines over the resolver's limits is cut
// to them, with upstream's DNSConfigForming events.
func dnsLimitCases() []dnsCase {
	var many []string
	for i := range 32 {
		many = append(many, fmt.Sprintf("s%d.test", i))
	}
	applied := "default.svc.k8s.test svc.k8s.test k8s.test node.test lab.test " + strings.Join(many[:27], " ")
	return []dnsCase{
		{name: "search-limit", change: func(p *v1.Pod) { p.Spec.DNSConfig = &v1.PodDNSConfig{Searches: many} },
			resolv: "search " + applied + "\nnameserver 10.96.0.10\noptions ndots:5\n",
			event:  "DNSConfigForming: Search Line limits were exceeded, some search paths have been omitted, the applied search line is: " + applied},
		{name: "nameserver-limit", change: func(p *v1.Pod) {
			p.Spec.DNSConfig = &v1.PodDNSConfig{Nameservers: []string{"10.96.0.11", "10.96.0.12", "10.96.0.13"}}
		}, resolv: "search default.svc.k8s.test svc.k8s.test k8s.test node.test lab.test\nnameserver 10.96.0.10\nnameserver 10.96.0.11\nnameserver 10.96.0.12\noptions ndots:5\n",
			event: "DNSConfigForming: Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 10.96.0.10 10.96.0.11 10.96.0.12"},
	}
}

// runDNSCases creates every case's pod at once and checks each pod's output.
func runDNSCases(t *testing.T, node string, cases []dnsCase) {
	ctx := ctxFor(t, 3*time.Minute)
	pods := make([]*v1.Pod, len(cases))
	for i, tc := range cases {
		pod := newPod(node, "sh", "-c", dnsScript)
		if tc.change != nil {
			tc.change(pod)
		}
		pods[i] = createPod(ctx, t, pod)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := watchPod(ctx, t, pods[i], "Running with its IP", func(p *v1.Pod) bool {
				return p.Status.Phase == v1.PodRunning && p.Status.PodIP != ""
			})
			parts := dnsOutput(ctx, t, p)
			if tc.resolv != "" && !sameResolvConf(parts[0], tc.resolv) {
				t.Errorf("/etc/resolv.conf\n%s\nwant\n%s", parts[0], tc.resolv)
			}
			if tc.hosts != nil && parts[1] != tc.hosts(p) {
				t.Errorf("/etc/hosts\n%s\nwant\n%s", parts[1], tc.hosts(p))
			}
			if tc.hostname != nil {
				if h := tc.hostname(p); parts[2] != h+"\n"+h+"\n" {
					t.Errorf("hostname and $HOSTNAME %q, want %q", parts[2], h)
				}
			}
			if tc.event != "" {
				reason, msg, _ := strings.Cut(tc.event, ": ")
				waitEvent(ctx, t, p, reason, msg)
			}
		})
	}
}

// dnsOutput is the pod's three sections of dnsScript output, once all are written.
func dnsOutput(ctx context.Context, t *testing.T, p *v1.Pod) []string {
	t.Helper()
	for {
		out, err := podLogs(ctx, p, &v1.PodLogOptions{})
		if parts := strings.Split(out, "==\n"); err == nil && len(parts) == 3 && strings.Count(parts[2], "\n") == 2 {
			return parts
		}
		select {
		case <-ctx.Done():
			t.Fatalf("output of %s: %q, %v", p.Name, out, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// sameResolvConf compares resolv.conf contents line by line, the options of a line as a
// set: the upstream kubelet merges options through a map, so their order varies.
func sameResolvConf(got, want string) bool {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	if len(g) != len(w) {
		return false
	}
	for i := range g {
		if strings.HasPrefix(g[i], "options ") {
			gf, wf := strings.Fields(g[i]), strings.Fields(w[i])
			slices.Sort(gf)
			slices.Sort(wf)
			if !slices.Equal(gf, wf) {
				return false
			}
		} else if g[i] != w[i] {
			return false
		}
	}
	return true
}

// TestDNSBadInput: a clusterDNS that is not an IP leaves the node up (as upstream) and
// ClusterFirst pods fall back to Default with MissingClusterDNS on the pod and the node;
// a setHostnameAsFQDN pod whose FQDN passes 64 characters gets no sandbox, with
// upstream's FailedCreatePodSandBox message.
func TestDNSBadInput(t *testing.T) {
	node := startDNSNode(t, "dns-bad", "--cluster-dns=dns.invalid", "--cluster-domain="+dnsDomain)
	ctx := ctxFor(t, 2*time.Minute)
	missing := `kubelet does not have ClusterDNS IP configured and cannot create Pod using "ClusterFirst" policy. Falling back to "Default" policy.`
	runDNSCases(t, node, []dnsCase{{name: "missing-cluster-dns",
		resolv: "search node.test lab.test\nnameserver 127.0.0.1\noptions timeout:2 attempts:3\n",
		event:  "MissingClusterDNS: pod: ",
	}})
	waitNodeEvent(ctx, t, node, "MissingClusterDNS", missing)

	long := newPod(node, "true")
	long.Spec.Hostname, long.Spec.Subdomain, long.Spec.SetHostnameAsFQDN = strings.Repeat("h", 40), "web", ptr(true)
	p := createPod(ctx, t, long)
	fqdn := long.Spec.Hostname + ".web.default.svc.k8s.test"
	waitEvent(ctx, t, p, "FailedCreatePodSandBox", fmt.Sprintf("Failed to create pod sandbox: failed to construct FQDN from pod hostname and cluster domain, FQDN %s is too long (64 characters is the max, %d characters requested)", fqdn, len(fqdn)))
	if p, err := bed.Client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{}); err != nil || p.Status.Phase != v1.PodPending {
		t.Errorf("pod with a too long FQDN: %v %v, want Pending", p.Status.Phase, err)
	}
}

// waitNodeEvent waits for a kubelet event of reason on node whose message is msg.
func waitNodeEvent(ctx context.Context, t *testing.T, node, reason, msg string) {
	t.Helper()
	waitNodeEventMatching(ctx, t, node, reason, fmt.Sprintf("%q", msg), func(e *v1.Event) bool { return e.Message == msg })
}

// waitNodeEventMatching waits for a kubelet event of reason on node that match accepts
// (what describes it in the failure, with every node event seen).
func waitNodeEventMatching(ctx context.Context, t *testing.T, node, reason, what string, match func(*v1.Event) bool) {
	t.Helper()
	var seen []string
	for {
		evs, err := bed.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.name", node).String()})
		if err != nil {
			t.Fatal(err)
		}
		seen = seen[:0]
		for i := range evs.Items {
			if e := &evs.Items[i]; e.InvolvedObject.Kind == "Node" && e.Reason == reason && match(e) {
				return
			}
			seen = append(seen, evs.Items[i].Reason+": "+evs.Items[i].Message)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no node event %s %s; node events: %q", reason, what, seen)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
