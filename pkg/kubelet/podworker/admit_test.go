package podworker

import (
	"errors"
	"runtime"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/minikubelet/minikubelet/pkg/kubelet/allocation"
	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
)

func TestAdmitSysctls(t *testing.T) {
	no := false
	for _, tc := range []struct {
		name    string
		sysctls []string
		allowed []string
		hostNet bool
		userNS  bool
		want    string
	}{
		{name: "none"},
		{name: "safe", sysctls: []string{"net.ipv4.ip_local_port_range", "kernel.shm_rmid_forced"}},
		{name: "slash form is normalised", sysctls: []string{"net/ipv4/tcp_syncookies"}},
		{name: "unsafe", sysctls: []string{"kernel.msgmax"}, want: `forbidden sysctl: "kernel.msgmax" not allowlisted`},
		{name: "unsafe allowed by name", sysctls: []string{"kernel.msgmax"}, allowed: []string{"kernel.msgmax"}},
		{name: "unsafe allowed by prefix", sysctls: []string{"net.core.somaxconn"}, allowed: []string{"net.core.*"}},
		{name: "prefix does not over-match", sysctls: []string{"net.corex"}, allowed: []string{"net.core.*"}, want: `forbidden sysctl: "net.corex" not allowlisted`},
		{name: "safe net sysctl with host network", sysctls: []string{"net.ipv4.tcp_syncookies"}, hostNet: true,
			want: `forbidden sysctl: "net.ipv4.tcp_syncookies" not allowed with host Net enabled`},
		{name: "IPC sysctl with own user namespace", sysctls: []string{"kernel.shm_rmid_forced"}, userNS: true},
	} {
		pod := &v1.Pod{Spec: v1.PodSpec{HostNetwork: tc.hostNet, SecurityContext: &v1.PodSecurityContext{}}}
		if tc.userNS {
			pod.Spec.HostUsers = &no
		}
		for _, s := range tc.sysctls {
			pod.Spec.SecurityContext.Sysctls = append(pod.Spec.SecurityContext.Sysctls, v1.Sysctl{Name: s, Value: "1"})
		}
		if got := admitSysctls(pod, tc.allowed); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestServiceEnv(t *testing.T) {
	svc := func(ns, name, ip string, ports ...v1.ServicePort) *v1.Service {
		return &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1.ServiceSpec{ClusterIP: ip, Ports: ports}}
	}
	svcs := []*v1.Service{
		svc("default", "kubernetes", "10.96.0.1", v1.ServicePort{Name: "https", Port: 443, Protocol: v1.ProtocolTCP}),
		svc("app", "my-db", "10.96.0.7", v1.ServicePort{Port: 5432}, v1.ServicePort{Name: "metrics", Port: 9187, Protocol: v1.ProtocolUDP}),
		svc("app", "headless", "None", v1.ServicePort{Port: 80}),
		svc("other", "elsewhere", "10.96.0.9", v1.ServicePort{Port: 80}),
	}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app"}}
	got := map[string]string{}
	for _, kv := range serviceEnv(pod, svcs) {
		got[kv[0]] = kv[1]
	}
	want := map[string]string{
		"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443", "KUBERNETES_SERVICE_PORT_HTTPS": "443",
		"KUBERNETES_PORT": "tcp://10.96.0.1:443", "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443",
		"KUBERNETES_PORT_443_TCP_PROTO": "tcp", "KUBERNETES_PORT_443_TCP_PORT": "443", "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1",
		"MY_DB_SERVICE_HOST": "10.96.0.7", "MY_DB_SERVICE_PORT": "5432", "MY_DB_SERVICE_PORT_METRICS": "9187",
		"MY_DB_PORT": "tcp://10.96.0.7:5432", "MY_DB_PORT_5432_TCP": "tcp://10.96.0.7:5432", "MY_DB_PORT_5432_TCP_PROTO": "tcp",
		"MY_DB_PORT_5432_TCP_PORT": "5432", "MY_DB_PORT_5432_TCP_ADDR": "10.96.0.7",
		"MY_DB_PORT_9187_UDP": "udp://10.96.0.7:9187", "MY_DB_PORT_9187_UDP_PROTO": "udp", "MY_DB_PORT_9187_UDP_PORT": "9187", "MY_DB_PORT_9187_UDP_ADDR": "10.96.0.7",
	}
	if len(got) != len(want) {
		t.Errorf("got %d vars, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	// enableServiceLinks: false keeps only the master service.
	pod.Spec.EnableServiceLinks = new(bool)
	for _, kv := range serviceEnv(pod, svcs) {
		if kv[0][:4] == "MY_D" {
			t.Errorf("service link %s despite enableServiceLinks=false", kv[0])
		}
	}
}

func TestHostPortsConflictAndRequests(t *testing.T) {
	withPort := func(ip string, port int32, proto v1.Protocol) *v1.Pod {
		return &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Ports: []v1.ContainerPort{{ContainerPort: 80, HostPort: port, HostIP: ip, Protocol: proto}}}}}}
	}
	for _, tc := range []struct {
		a, b *v1.Pod
		want bool
	}{
		{withPort("", 8080, ""), withPort("", 8080, v1.ProtocolTCP), true},
		{withPort("", 8080, ""), withPort("", 8081, ""), false},
		{withPort("", 8080, v1.ProtocolUDP), withPort("", 8080, v1.ProtocolTCP), false},
		{withPort("127.0.0.1", 8080, ""), withPort("127.0.0.2", 8080, ""), false},
		{withPort("127.0.0.1", 8080, ""), withPort("0.0.0.0", 8080, ""), true},
		{&v1.Pod{}, withPort("", 8080, ""), false},
	} {
		if got := hostPortsConflict(tc.a, []*v1.Pod{tc.b}); got != tc.want {
			t.Errorf("%v vs %v: conflict %v, want %v", hostPorts(tc.a), hostPorts(tc.b), got, tc.want)
		}
	}
	always := v1.ContainerRestartPolicyAlways
	sidecar := withPort("", 9090, "")
	sidecar.Spec.InitContainers, sidecar.Spec.Containers = sidecar.Spec.Containers, nil
	if hostPortsConflict(withPort("", 9090, ""), []*v1.Pod{sidecar}) {
		t.Error("an init container's host port counts (upstream counts sidecars' only)")
	}
	sidecar.Spec.InitContainers[0].RestartPolicy = &always
	if !hostPortsConflict(withPort("", 9090, ""), []*v1.Pod{sidecar}) {
		t.Error("a sidecar's host port does not count")
	}
}

// AppArmor and the pod's OS, as upstream admits them: a profile the host cannot enforce
// refuses the pod (never runs it unconfined); unconfined needs nothing; another OS, by
// label or by the os field, is refused.
func TestAdmitAppArmorAndOS(t *testing.T) {
	localhost := "my-profile"
	for _, tc := range []struct {
		name     string
		pod      v1.Pod
		apparmor bool
		want     string
	}{
		{name: "nothing asked"},
		{name: "pod runtime default, host without AppArmor", pod: v1.Pod{Spec: v1.PodSpec{SecurityContext: &v1.PodSecurityContext{
			AppArmorProfile: &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault}}}}, want: "AppArmor"},
		{name: "container localhost, host without AppArmor", pod: v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c",
			SecurityContext: &v1.SecurityContext{AppArmorProfile: &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost, LocalhostProfile: &localhost}}}}}}, want: "AppArmor"},
		{name: "annotation, host without AppArmor", pod: v1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
			v1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix + "c": v1.DeprecatedAppArmorBetaProfileRuntimeDefault}}}, want: "AppArmor"},
		{name: "unconfined needs no AppArmor", pod: v1.Pod{Spec: v1.PodSpec{SecurityContext: &v1.PodSecurityContext{
			AppArmorProfile: &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeUnconfined}}}}},
		{name: "runtime default on a host with AppArmor", apparmor: true, pod: v1.Pod{Spec: v1.PodSpec{SecurityContext: &v1.PodSecurityContext{
			AppArmorProfile: &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault}}}}},
		{name: "windows os field", pod: v1.Pod{Spec: v1.PodSpec{OS: &v1.PodOS{Name: v1.Windows}}}, want: "PodOSNotSupported"},
		{name: "linux os field", pod: v1.Pod{Spec: v1.PodSpec{OS: &v1.PodOS{Name: v1.Linux}}}},
		{name: "windows os label", pod: v1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{v1.LabelOSStable: "windows"}}}, want: "PodOSSelectorNodeLabelDoesNotMatch"},
	} {
		w := &Workers{cfg: Config{AppArmorEnabled: tc.apparmor}, pods: map[types.UID]*worker{}}
		if got, msg := w.admit(&tc.pod); got != tc.want {
			t.Errorf("%s: %q (%s), want %q", tc.name, got, msg, tc.want)
		}
	}
}

// admitCase is one pod admitted against a fake node with some active admitted pods.
type admitCase struct {
	name          string
	node          func(n *v1.Node)
	apiNode       func(n *v1.Node) // the node a GET returns (nil: not found)
	pod           func(p *v1.Pod)
	active        []*v1.Pod
	reason, msg   string
	wantNodeFetch bool
}

// Test helpers for admitCase: requests, an active pod, a nodeSelector on a label the node
// lacks, a NoExecute taint.
func requests(cpu, mem string) v1.ResourceRequirements {
	r := v1.ResourceList{}
	if cpu != "" {
		r[v1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		r[v1.ResourceMemory] = resource.MustParse(mem)
	}
	return v1.ResourceRequirements{Requests: r}
}

func running(uid, cpu string, port int32) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid)}, Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Resources: requests(cpu, "")}}}}
	if port != 0 {
		p.Spec.Containers[0].Ports = []v1.ContainerPort{{ContainerPort: 80, HostPort: port}}
	}
	return p
}

func selector(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{"example.com/absent": "x"} }

func noExecute(n *v1.Node) {
	n.Spec.Taints = []v1.Taint{{Key: "dedicated", Value: "db", Effect: v1.TaintEffectNoExecute}}
}

const (
	affinityMsg = "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
	taintMsg    = "Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate"
	portsMsg    = "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports"
)

// The node's labels, taints, name, OS and features.
func TestAdmitNode(t *testing.T) {
	strict := v1.SupplementalGroupsPolicyStrict
	for _, tc := range []admitCase{
		{name: "fits"},
		{name: "nodeSelector absent label", pod: selector, reason: "NodeAffinity", msg: affinityMsg, wantNodeFetch: true},
		{name: "nodeSelector label newer than the informer", pod: selector, wantNodeFetch: true,
			apiNode: func(n *v1.Node) { n.Labels["example.com/absent"] = "x" }},
		{name: "nodeSelector matching", pod: selector, node: func(n *v1.Node) { n.Labels["example.com/absent"] = "x" }},
		{name: "required node affinity", reason: "NodeAffinity", msg: affinityMsg, wantNodeFetch: true, pod: func(p *v1.Pod) {
			p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
				NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{Key: "zone", Operator: v1.NodeSelectorOpIn, Values: []string{"b"}}}}}}}}
		}},
		{name: "NoExecute taint", node: noExecute, reason: "TaintToleration", msg: taintMsg},
		{name: "NoSchedule taint is the scheduler's", node: func(n *v1.Node) {
			n.Spec.Taints = []v1.Taint{{Key: "dedicated", Effect: v1.TaintEffectNoSchedule}}
		}},
		{name: "NoExecute taint tolerated", node: noExecute, pod: func(p *v1.Pod) {
			p.Spec.Tolerations = []v1.Toleration{{Key: "dedicated", Operator: v1.TolerationOpExists}}
		}},
		{name: "NoExecute taint, static pod", node: noExecute, pod: func(p *v1.Pod) {
			p.Annotations = map[string]string{"kubernetes.io/config.source": "file"}
		}},
		{name: "other node name", pod: func(p *v1.Pod) { p.Spec.NodeName = "other" }, reason: "NodeName",
			msg: "Predicate NodeName failed: node(s) didn't match the requested node name"},
		{name: "os label", pod: func(p *v1.Pod) { p.Labels = map[string]string{v1.LabelOSStable: "windows"} }, node: noExecute,
			reason: "PodOSSelectorNodeLabelDoesNotMatch", msg: "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label"},
		{name: "supplemental groups Strict unsupported", reason: "SupplementalGroupsPolicyNotSupported", msg: "SupplementalGroupsPolicy=Strict is not supported in this node",
			pod: func(p *v1.Pod) { p.Spec.SecurityContext = &v1.PodSecurityContext{SupplementalGroupsPolicy: &strict} }},
		{name: "supplemental groups Strict supported", node: func(n *v1.Node) {
			n.Status.Features = &v1.NodeFeatures{SupplementalGroupsPolicy: new(bool)}
			*n.Status.Features.SupplementalGroupsPolicy = true
		},
			pod: func(p *v1.Pod) { p.Spec.SecurityContext = &v1.PodSecurityContext{SupplementalGroupsPolicy: &strict} }},
	} {
		t.Run(tc.name, func(t *testing.T) { runAdmitCase(t, tc) })
	}
}

// Resources and host ports, and the order of several failures.
func TestAdmitResources(t *testing.T) {
	always := v1.ContainerRestartPolicyAlways
	for _, tc := range []admitCase{
		{name: "out of cpu", active: []*v1.Pod{running("a", "1500m", 0)}, pod: func(p *v1.Pod) { p.Spec.Containers[0].Resources = requests("600m", "") },
			reason: "OutOfcpu", msg: "Node didn't have enough resource: cpu, requested: 600, used: 1500, capacity: 2000"},
		{name: "init container larger than the sum", reason: "OutOfcpu", msg: "Node didn't have enough resource: cpu, requested: 2500, used: 0, capacity: 2000", pod: func(p *v1.Pod) {
			p.Spec.InitContainers = []v1.Container{{Name: "i", Resources: requests("2500m", "")}, {Name: "s", RestartPolicy: &always, Resources: requests("100m", "")}}
			p.Spec.Containers[0].Resources = requests("300m", "")
		}},
		{name: "sidecar adds to the containers", reason: "OutOfmemory", msg: "Node didn't have enough resource: memory, requested: 3221225472, used: 0, capacity: 2147483648", pod: func(p *v1.Pod) {
			p.Spec.InitContainers = []v1.Container{{Name: "s", RestartPolicy: &always, Resources: requests("", "1Gi")}}
			p.Spec.Containers[0].Resources = requests("", "2Gi")
		}},
		{name: "overhead counts", reason: "OutOfcpu", msg: "Node didn't have enough resource: cpu, requested: 2100, used: 0, capacity: 2000", pod: func(p *v1.Pod) {
			p.Spec.Overhead = v1.ResourceList{v1.ResourceCPU: resource.MustParse("200m")}
			p.Spec.Containers[0].Resources = requests("1900m", "")
		}},
		{name: "extended resource the node lacks is ignored", pod: func(p *v1.Pod) {
			p.Spec.Containers[0].Resources = v1.ResourceRequirements{Requests: v1.ResourceList{"example.com/gpu": resource.MustParse("1")}}
		}},
		{name: "extended resource short", reason: "OutOfexample.com/gpu", msg: "Node didn't have enough resource: example.com/gpu, requested: 2, used: 0, capacity: 1",
			node: func(n *v1.Node) { n.Status.Allocatable["example.com/gpu"] = resource.MustParse("1") },
			pod: func(p *v1.Pod) {
				p.Spec.Containers[0].Resources = v1.ResourceRequirements{Requests: v1.ResourceList{"example.com/gpu": resource.MustParse("2")}}
			}},
		{name: "out of pods first, of several", active: []*v1.Pod{running("a", "", 8080), running("b", "2", 0)}, node: noExecute,
			pod: func(p *v1.Pod) {
				selector(p)
				p.Spec.Containers[0].Resources = requests("1", "")
				p.Spec.Containers[0].Ports = []v1.ContainerPort{{ContainerPort: 80, HostPort: 8080}}
			},
			reason: "OutOfpods", msg: "Node didn't have enough resource: pods, requested: 1, used: 2, capacity: 2"},
		{name: "cpu before affinity, ports and taints", active: []*v1.Pod{running("a", "2", 8080)}, node: noExecute,
			pod: func(p *v1.Pod) {
				selector(p)
				p.Spec.Containers[0].Resources = requests("1", "")
				p.Spec.Containers[0].Ports = []v1.ContainerPort{{ContainerPort: 80, HostPort: 8080}}
			},
			reason: "OutOfcpu", msg: "Node didn't have enough resource: cpu, requested: 1000, used: 2000, capacity: 2000"},
		{name: "affinity before ports, no fetch", active: []*v1.Pod{running("a", "", 8080)}, node: noExecute,
			pod: func(p *v1.Pod) {
				selector(p)
				p.Spec.Containers[0].Ports = []v1.ContainerPort{{ContainerPort: 80, HostPort: 8080}}
			},
			reason: "NodeAffinity", msg: affinityMsg},
		{name: "ports before taints", active: []*v1.Pod{running("a", "", 8080)}, node: noExecute,
			pod:    func(p *v1.Pod) { p.Spec.Containers[0].Ports = []v1.ContainerPort{{ContainerPort: 80, HostPort: 8080}} },
			reason: "NodePorts", msg: portsMsg},
	} {
		t.Run(tc.name, func(t *testing.T) { runAdmitCase(t, tc) })
	}
}

func runAdmitCase(t *testing.T, tc admitCase) {
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Labels: map[string]string{v1.LabelOSStable: runtime.GOOS, "zone": "a"}},
		Status: v1.NodeStatus{Allocatable: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2"), v1.ResourceMemory: resource.MustParse("2Gi"),
			v1.ResourcePods: resource.MustParse("2")}}}
	if tc.node != nil {
		tc.node(node)
	}
	client := fake.NewClientset()
	if tc.apiNode != nil {
		fresh := node.DeepCopy()
		tc.apiNode(fresh)
		client = fake.NewClientset(fresh)
	}
	alloc, _ := allocation.NewManager("")
	w := &Workers{pods: map[types.UID]*worker{}, cfg: Config{NodeName: "n", Client: client, Status: status.NewManager(nil),
		Node: func() (*v1.Node, error) { return node.DeepCopy(), nil }, Allocation: alloc}}
	for _, p := range tc.active {
		w.pods[p.UID] = &worker{uid: p.UID, pod: p, admitted: true}
	}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "new"}, Spec: v1.PodSpec{NodeName: "n", Containers: []v1.Container{{Name: "c"}}}}
	if tc.pod != nil {
		tc.pod(pod)
	}
	reason, msg := w.admit(pod)
	if reason != tc.reason || msg != tc.msg {
		t.Errorf("got %q %q, want %q %q", reason, msg, tc.reason, tc.msg)
	}
	fetched := false
	for _, a := range client.Actions() {
		fetched = fetched || a.GetVerb() == "get" && a.GetResource().Resource == "nodes"
	}
	if fetched != tc.wantNodeFetch {
		t.Errorf("node fetched synchronously: %v, want %v", fetched, tc.wantNodeFetch)
	}
}

// Without the node, admission fails as upstream's does.
func TestAdmitWithoutNode(t *testing.T) {
	w := &Workers{pods: map[types.UID]*worker{}, cfg: Config{NodeName: "n", Node: func() (*v1.Node, error) { return nil, errors.New("no node") }}}
	if reason, msg := w.admit(&v1.Pod{}); reason != "InvalidNodeInfo" || msg != "Kubelet cannot get node info." {
		t.Errorf("got %q %q", reason, msg)
	}
}
