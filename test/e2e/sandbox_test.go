package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// get fetches a path from the test app in the pod (retrying until it listens).
func get(t *testing.T, addr, path string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + path)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
			}
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
}

func TestPodLifecycleSandboxDetails(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "pod-details", "--cluster-domain=cluster.local") // kubeadm's; the FQDN below ends in it
	watchNode(ctx, t, k.NodeName, isReady)
	hostPort := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}()

	pod := testAppPod(k.NodeName, "serve", "--http=:$(PORT)")
	pod.Spec.Hostname, pod.Spec.Subdomain = "custom-host", "sub"
	pod.Spec.HostAliases = []v1.HostAlias{{IP: "127.0.0.2", Hostnames: []string{"alias-one", "alias-two"}}}
	pod.Spec.DNSPolicy = v1.DNSNone
	pod.Spec.DNSConfig = &v1.PodDNSConfig{Nameservers: []string{"127.0.0.1"}, Searches: []string{"example.local"},
		Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: ptr("2")}}}
	c := &pod.Spec.Containers[0]
	c.Env = []v1.EnvVar{{Name: "PORT", Value: "8080"}, {Name: "GREETING", Value: "hello-$(PORT)"}, {Name: "ESCAPED", Value: "$$(PORT)"},
		{Name: "MY_POD", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
	c.Ports = []v1.ContainerPort{{ContainerPort: 8080, HostPort: int32(hostPort)}}
	p := watchPod(ctx, t, createPod(ctx, t, pod), "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	addr := p.Status.PodIP + ":8080"

	if h := strings.TrimSpace(get(t, addr, "/file?path=/etc/hostname")); h != "custom-host" {
		t.Errorf("hostname %q", h)
	}
	hosts := get(t, addr, "/file?path=/etc/hosts")
	for _, want := range []string{
		"# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost",
		fmt.Sprintf("%s\tcustom-host.sub.default.svc.cluster.local\tcustom-host", p.Status.PodIP),
		"# Entries added by HostAliases.\n127.0.0.2\talias-one\talias-two",
	} {
		if !strings.Contains(hosts, want) {
			t.Errorf("/etc/hosts lacks %q:\n%s", want, hosts)
		}
	}
	resolv := get(t, addr, "/file?path=/etc/resolv.conf")
	for _, want := range []string{"nameserver 127.0.0.1", "search example.local", "options ndots:2"} {
		if !strings.Contains(resolv, want) {
			t.Errorf("resolv.conf lacks %q:\n%s", want, resolv)
		}
	}
	env := get(t, addr, "/env")
	for _, want := range []string{"GREETING=hello-8080", "ESCAPED=$(PORT)", "MY_POD=" + p.Name} {
		if !strings.Contains(env, want+"\n") {
			t.Errorf("env lacks %q:\n%s", want, env)
		}
	}
	if cg := get(t, addr, "/file?path=/proc/self/cgroup"); !strings.Contains(cg, "/kubepods/besteffort/pod"+string(p.UID)+"/") {
		t.Errorf("container not in the pod's cgroup:\n%s", cg)
	}
	if bed.Runtime() == testbed.RuntimeCRIO {
		// CRI-O maps host ports itself, with NAT chains of the whole machine, not through
		// the bed's CNI portmap; the CRI-O bed turns that off (testbed/crio.go).
		t.Logf("hostPort %d not checked: the CRI-O bed maps no host ports", hostPort)
	} else if body := get(t, fmt.Sprintf("127.0.0.1:%d", hostPort), "/healthz"); body != "ok\n" {
		t.Errorf("hostPort %d answered %q", hostPort, body)
	}

	// ClusterFirst with no cluster DNS falls back to the node's resolver file, which on the
	// test bed names only 127.0.0.1: nothing may leave the machine.
	plain := watchPod(ctx, t, createPod(ctx, t, testAppPod(k.NodeName, "serve", "--http=:8080")), "Running",
		func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	if r := get(t, plain.Status.PodIP+":8080", "/file?path=/etc/resolv.conf"); strings.TrimSpace(r) != "nameserver 127.0.0.1" {
		t.Errorf("default pod's resolv.conf = %q, want only the node resolver's nameserver 127.0.0.1", r)
	}
}
