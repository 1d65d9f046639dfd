package podworker

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
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

// admit decides whether the node takes a new pod: its sysctls, and room under maxPods
// (counting the admitted pods still active). Reason and message as upstream.
func (w *Workers) admit(pod *v1.Pod) (reason, message string) {
	if msg := admitSysctls(pod, w.cfg.AllowedUnsafeSysctls); msg != "" {
		return "SysctlForbidden", msg
	}
	if w.cfg.MaxPods > 0 {
		if used := w.activeAdmitted(pod.UID); used >= w.cfg.MaxPods {
			return "OutOfpods", fmt.Sprintf("Node didn't have enough resource: pods, requested: 1, used: %d, capacity: %d", used, w.cfg.MaxPods)
		}
	}
	return "", ""
}

// activeAdmitted counts the admitted, not yet finished pods other than uid.
func (w *Workers) activeAdmitted(uid types.UID) int {
	w.mu.Lock()
	wks := make([]*worker, 0, len(w.pods))
	for _, wk := range w.pods {
		wks = append(wks, wk)
	}
	w.mu.Unlock()
	n := 0
	for _, wk := range wks {
		wk.mu.Lock()
		if wk.admitted && !wk.rejected && !wk.removed && wk.pod != nil && wk.pod.UID != uid &&
			wk.pod.Status.Phase != v1.PodSucceeded && wk.pod.Status.Phase != v1.PodFailed {
			n++
		}
		wk.mu.Unlock()
	}
	return n
}
