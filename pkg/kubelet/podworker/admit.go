package podworker

import (
	"fmt"
	"os"
	"runtime"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/component-helpers/node/util/sysctl"
)

// The node's safe sysctls (upstream's default allowlist; all namespaced, so isolated from
// other pods).
var safeSysctls = []string{
	"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
	"net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start", "net.ipv4.ip_local_reserved_ports",
	"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem",
	"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat",
}

// admitSysctls is upstream's sysctl admission: every sysctl must be safe or allowed by
// allowedUnsafeSysctls (names, or prefixes ending in "*"), and a sysctl of a namespace the
// pod shares with the host is refused. It returns the rejection message ("" = admitted).
func admitSysctls(pod *v1.Pod, allowedUnsafe []string) string {
	psc := pod.Spec.SecurityContext
	if psc == nil {
		return ""
	}
	hostUsers := pod.Spec.HostUsers == nil || *pod.Spec.HostUsers
	for _, s := range psc.Sysctls {
		name := sysctl.NormalizeName(s.Name)
		if !sysctlAllowed(name, allowedUnsafe) {
			return fmt.Sprintf("forbidden sysctl: %q not allowlisted", name)
		}
		ns, _, _ := sysctl.GetNamespace(name)
		shared := map[sysctl.Namespace]bool{sysctl.NetNamespace: pod.Spec.HostNetwork, sysctl.IPCNamespace: pod.Spec.HostIPC, sysctl.UserNamespace: hostUsers}
		if shared[ns] && isSafe(name) {
			return fmt.Sprintf("forbidden sysctl: %q not allowed with host %s enabled", name, ns)
		}
	}
	return ""
}

func isSafe(name string) bool {
	for _, s := range safeSysctls {
		if s == name {
			return true
		}
	}
	return false
}

func sysctlAllowed(name string, allowedUnsafe []string) bool {
	if isSafe(name) {
		return true
	}
	for _, a := range allowedUnsafe {
		if p, ok := strings.CutSuffix(a, "*"); ok && strings.HasPrefix(name, p) || a == name {
			return true
		}
	}
	return false
}

// HostAppArmorEnabled says whether the kernel enforces AppArmor (as runc decides it).
func HostAppArmorEnabled() bool {
	b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && len(b) > 0 && b[0] == 'Y'
}

// appArmorRequired: the pod asks for an AppArmor profile other than unconfined, by field
// or by upstream's deprecated per-container annotation.
func appArmorRequired(pod *v1.Pod) bool {
	confined := func(p *v1.AppArmorProfile) bool { return p != nil && p.Type != v1.AppArmorProfileTypeUnconfined }
	if sc := pod.Spec.SecurityContext; sc != nil && confined(sc.AppArmorProfile) {
		return true
	}
	for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			if c.SecurityContext != nil && confined(c.SecurityContext.AppArmorProfile) {
				return true
			}
		}
	}
	for k, v := range pod.Annotations {
		if strings.HasPrefix(k, v1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix) && v != v1.DeprecatedAppArmorBetaProfileNameUnconfined {
			return true
		}
	}
	return false
}

// admitOS is upstream's OS admission: a pod labelled for another OS, or whose os field
// names another OS, is refused.
func admitOS(pod *v1.Pod) (reason, message string) {
	if name, ok := pod.Labels[v1.LabelOSStable]; ok && name != runtime.GOOS {
		return "PodOSSelectorNodeLabelDoesNotMatch", "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label"
	}
	if pod.Spec.OS != nil && string(pod.Spec.OS.Name) != runtime.GOOS {
		return "PodOSNotSupported", "Failed to admit pod as the OS field doesn't match node OS"
	}
	return "", ""
}

// admit decides whether the node takes a new pod, with upstream's reasons and messages
// and in its order: sysctls; AppArmor (refused where the host cannot enforce it, never
// run without); the OS; then room under maxPods, cpu and memory requests within
// allocatable (counting the admitted pods still active); then free host ports.
func (w *Workers) admit(pod *v1.Pod) (reason, message string) {
	if msg := admitSysctls(pod, w.cfg.AllowedUnsafeSysctls); msg != "" {
		return "SysctlForbidden", msg
	}
	if appArmorRequired(pod) && !w.cfg.AppArmorEnabled {
		return "AppArmor", "Cannot enforce AppArmor: AppArmor is not enabled on the host"
	}
	if reason, msg := admitOS(pod); reason != "" {
		return reason, msg
	}
	active := w.activeAdmitted(pod.UID)
	if w.cfg.MaxPods > 0 && len(active) >= w.cfg.MaxPods {
		return "OutOfpods", fmt.Sprintf("Node didn't have enough resource: pods, requested: 1, used: %d, capacity: %d", len(active), w.cfg.MaxPods)
	}
	for _, r := range []struct {
		name   v1.ResourceName
		reason string
	}{{v1.ResourceCPU, "OutOfcpu"}, {v1.ResourceMemory, "OutOfmemory"}} {
		req := podRequest(pod, r.name)
		capacity, ok := w.cfg.Allocatable[r.name]
		if req == 0 || !ok {
			continue
		}
		var used int64
		for _, p := range active {
			used += podRequest(p, r.name)
		}
		if c := quantityValue(capacity, r.name); used+req > c {
			return r.reason, fmt.Sprintf("Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d", r.name, req, used, c)
		}
	}
	if hostPortsConflict(pod, active) {
		return "NodePorts", "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports"
	}
	return "", ""
}

// podRequest is the pod's effective request (cpu in millicores, memory in bytes): the sum
// over its containers and sidecars, or its largest init container if that is more.
func podRequest(pod *v1.Pod, name v1.ResourceName) int64 {
	var sum, maxInit int64
	for i := range pod.Spec.Containers {
		if q, ok := pod.Spec.Containers[i].Resources.Requests[name]; ok {
			sum += quantityValue(q, name)
		}
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		q, ok := c.Resources.Requests[name]
		if !ok {
			continue
		}
		if c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways {
			sum += quantityValue(q, name)
		} else {
			maxInit = max(maxInit, quantityValue(q, name))
		}
	}
	return max(sum, maxInit)
}

func quantityValue(q resource.Quantity, name v1.ResourceName) int64 {
	if name == v1.ResourceCPU {
		return q.MilliValue()
	}
	return q.Value()
}

type hostPort struct {
	proto v1.Protocol
	ip    string
	port  int32
}

func hostPorts(pod *v1.Pod) []hostPort {
	var out []hostPort
	for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			for _, p := range c.Ports {
				if p.HostPort == 0 {
					continue
				}
				proto := p.Protocol
				if proto == "" {
					proto = v1.ProtocolTCP
				}
				ip := p.HostIP
				if ip == "" {
					ip = "0.0.0.0"
				}
				out = append(out, hostPort{proto, ip, p.HostPort})
			}
		}
	}
	return out
}

// hostPortsConflict: the same protocol and port on overlapping addresses (0.0.0.0 covers all).
func hostPortsConflict(pod *v1.Pod, others []*v1.Pod) bool {
	want := hostPorts(pod)
	if len(want) == 0 {
		return false
	}
	for _, o := range others {
		for _, a := range hostPorts(o) {
			for _, b := range want {
				if a.proto == b.proto && a.port == b.port && (a.ip == b.ip || a.ip == "0.0.0.0" || b.ip == "0.0.0.0") {
					return true
				}
			}
		}
	}
	return false
}

// activeAdmitted returns the admitted, not yet finished pods other than uid.
func (w *Workers) activeAdmitted(uid types.UID) []*v1.Pod {
	w.mu.Lock()
	wks := make([]*worker, 0, len(w.pods))
	for _, wk := range w.pods {
		wks = append(wks, wk)
	}
	w.mu.Unlock()
	var out []*v1.Pod
	for _, wk := range wks {
		wk.mu.Lock()
		if wk.admitted && !wk.rejected && !wk.removed && wk.pod != nil && wk.pod.UID != uid {
			if st, ok := w.cfg.Status.Status(wk.pod.UID); !ok || st.Phase != v1.PodSucceeded && st.Phase != v1.PodFailed {
				out = append(out, wk.pod)
			}
		}
		wk.mu.Unlock()
	}
	return out
}
