package podworker

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
	req := func(cpu string) v1.ResourceRequirements {
		return v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu)}}
	}
	pod := &v1.Pod{Spec: v1.PodSpec{
		InitContainers: []v1.Container{{Resources: req("1")}, {RestartPolicy: &always, Resources: req("100m")}},
		Containers:     []v1.Container{{Resources: req("200m")}, {Resources: req("300m")}},
	}}
	if got := podRequest(pod, v1.ResourceCPU); got != 1000 {
		t.Errorf("cpu request %d, want 1000 (the init container is larger than 600m)", got)
	}
	pod.Spec.InitContainers[0].Resources = req("100m")
	if got := podRequest(pod, v1.ResourceCPU); got != 600 {
		t.Errorf("cpu request %d, want 600 (containers + sidecar)", got)
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
