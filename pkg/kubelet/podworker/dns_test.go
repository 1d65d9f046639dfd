package podworker

import (
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"

	"github.com/minikubelet/minikubelet/pkg/kubelet/dns"
)

// A new sandbox gets the pod's resolver config from the node's resolver file read then,
// with the FQDN hostname; forming it records upstream's events on the pod and the node.
func TestPodSandboxOptions(t *testing.T) {
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(resolv, []byte("nameserver 127.0.0.1\nsearch node.test\n"), 0o644)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "ns", UID: "u1"}, Spec: v1.PodSpec{
		DNSPolicy: v1.DNSClusterFirst, Subdomain: "web", SetHostnameAsFQDN: new(true),
		DNSConfig: &v1.PodDNSConfig{Nameservers: []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}}}}
	w, _, _ := newSyncFixture(t, pod, func(c *Config) {
		c.DNS = dns.Node{ClusterDNS: []net.IP{net.ParseIP("10.96.0.10")}, ClusterDomain: "k8s.test", ResolvConf: resolv}
	})
	o, err := w.podSandboxOptions(pod)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.96.0.10", "10.0.0.1", "10.0.0.2"}
	if !reflect.DeepEqual(o.DNS.Servers, want) || strings.Join(o.DNS.Searches, " ") != "ns.svc.k8s.test svc.k8s.test k8s.test node.test" {
		t.Errorf("DNS %v", o.DNS)
	}
	events := drain(w.cfg.Recorder.(*record.FakeRecorder))
	if len(events) != 1 || events[0] != "Warning DNSConfigForming Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: 10.96.0.10 10.0.0.1 10.0.0.2" {
		t.Errorf("events %q", events)
	}

	w.cfg.DNS.ClusterDNS = nil
	if _, err := w.podSandboxOptions(pod); err != nil {
		t.Fatal(err)
	}
	events = drain(w.cfg.Recorder.(*record.FakeRecorder))
	if len(events) != 3 || !strings.HasPrefix(events[0], "Warning MissingClusterDNS kubelet does not have ClusterDNS IP") ||
		!strings.HasPrefix(events[1], `Warning MissingClusterDNS pod: "web-0_ns(u1)". kubelet does not`) ||
		!strings.HasSuffix(events[2], "the applied nameserver line is: 127.0.0.1 10.0.0.1 10.0.0.2") {
		t.Errorf("events %q", events)
	}

	w.cfg.DNS.ResolvConf = filepath.Join(t.TempDir(), "gone")
	if _, err := w.podSandboxOptions(pod); err == nil || !os.IsNotExist(err) {
		t.Errorf("missing resolver file: %v", err)
	}
}

func TestHostsFile(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "ns", UID: "u1"}, Spec: v1.PodSpec{
		Subdomain: "web", HostAliases: []v1.HostAlias{{IP: "10.1.1.1", Hostnames: []string{"a", "b"}}}}}
	w, _, _ := newSyncFixture(t, pod, func(c *Config) { c.DNS.ClusterDomain = "k8s.test" })
	b, err := w.hostsFile(pod, []string{"10.244.0.5"})
	if err != nil || !strings.Contains(string(b), "\n10.244.0.5\tweb-0.web.ns.svc.k8s.test\tweb-0\n\n# Entries added by HostAliases.\n10.1.1.1\ta\tb\n") {
		t.Errorf("pod network:\n%s %v", b, err)
	}
	etcHosts = filepath.Join(t.TempDir(), "hosts")
	t.Cleanup(func() { etcHosts = "/etc/hosts" })
	os.WriteFile(etcHosts, []byte("127.0.0.1\tlocalhost\n"), 0o644)
	pod.Spec.HostNetwork = true
	b, err = w.hostsFile(pod, nil)
	if want := "# Kubernetes-managed hosts file (host network).\n127.0.0.1\tlocalhost\n\n# Entries added by HostAliases.\n10.1.1.1\ta\tb\n"; string(b) != want || err != nil {
		t.Errorf("host network:\n%s %v", b, err)
	}
}
