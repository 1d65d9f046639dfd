package podworker

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/component-helpers/node/util/sysctl"
	resourcehelper "k8s.io/component-helpers/resource"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"

	"github.com/minikubelet/minikubelet/pkg/cri"
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

// Upstream's admission reasons (pkg/kubelet/lifecycle/predicate.go) and the names and
// reasons of the scheduler plugins its predicates report (pkg/scheduler/framework/plugins:
// nodeaffinity, nodename, nodeports, tainttoleration).
const (
	reasonOSSelector    = "PodOSSelectorNodeLabelDoesNotMatch"
	reasonOSField       = "PodOSNotSupported"
	reasonGroupsPolicy  = "SupplementalGroupsPolicyNotSupported"
	reasonInvalidNode   = "InvalidNodeInfo"
	predNodeAffinity    = "NodeAffinity"
	predNodeName        = "NodeName"
	predNodePorts       = "NodePorts"
	predTaintToleration = "TaintToleration"
	errNodeAffinity     = "node(s) didn't match Pod's node affinity/selector"
	errNodeName         = "node(s) didn't match the requested node name"
	errNodePorts        = "node(s) didn't have free ports for the requested pod ports"
	errTaints           = "node(s) had taints that the pod didn't tolerate"
	// nodeGetTimeout bounds the synchronous GET of the node (node affinity recheck).
	nodeGetTimeout = 10 * time.Second
)

// failure is one failed predicate as upstream reports it: reason and message.
type failure struct{ reason, message string }

func predicateFailure(name, desc string) failure {
	return failure{name, fmt.Sprintf("Predicate %s failed: %s", name, desc)}
}

func insufficient(name v1.ResourceName, requested, used, capacity int64) failure {
	return failure{"OutOf" + string(name), fmt.Sprintf("Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d",
		name, requested, used, capacity)}
}

// admit decides whether the node takes a new pod, as upstream's admit handlers in their
// order: node pressure (the eviction manager); sysctls; the predicate handler (admitPredicates); AppArmor (refused where the
// host cannot enforce it, never run without). It returns upstream's reason and message
// ("" = admitted).
func (w *Workers) admit(pod *v1.Pod) (reason, message string) {
	if w.cfg.Pressure != nil {
		if reason, msg := w.cfg.Pressure(pod); reason != "" {
			return reason, msg
		}
	}
	if msg := admitSysctls(pod, w.cfg.AllowedUnsafeSysctls); msg != "" {
		return "SysctlForbidden", msg
	}
	if reason, msg := w.admitPredicates(pod); reason != "" {
		return reason, msg
	}
	if appArmorRequired(pod) && !w.cfg.AppArmorEnabled {
		return "AppArmor", "Cannot enforce AppArmor: AppArmor is not enabled on the host"
	}
	if reason, msg := admitUserNamespace(pod); reason != "" {
		return reason, msg
	}
	return "", ""
}

// admitPredicates is upstream's predicateAdmitHandler.Admit: the checks preemption cannot
// help first (the pod's OS label and field, SupplementalGroupsPolicy), then generalFilter
// against the node and the active admitted pods, of whose failures the first is reported.
func (w *Workers) admitPredicates(pod *v1.Pod) (reason, message string) {
	node, err := w.admissionNode()
	if err != nil {
		klog.Background().Error(err, "Cannot get Node info")
		return reasonInvalidNode, "Kubelet cannot get node info."
	}
	if reason, msg := admitOS(pod, node); reason != "" {
		return reason, msg
	}
	if fails := w.generalFilter(pod, node, w.activeAdmitted(pod.UID)); len(fails) > 0 {
		return fails[0].reason, fails[0].message
	}
	return "", ""
}

// admissionNode is the node pods are admitted against: cfg.Node, or without one a node
// of NodeName with the OS label only.
func (w *Workers) admissionNode() (*v1.Node, error) {
	if w.cfg.Node != nil {
		return w.cfg.Node()
	}
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: w.cfg.NodeName, Labels: map[string]string{v1.LabelOSStable: runtime.GOOS}}}, nil
}

// admitOS is upstream's OS admission: a pod whose kubernetes.io/os label differs from the
// node's (upstream resets the node's label to the kubelet's OS when it differs, so it is
// the kubelet's OS), or whose os field names another OS, is refused; so is a pod asking
// for SupplementalGroupsPolicy Strict where the node's status does not declare support.
func admitOS(pod *v1.Pod, node *v1.Node) (reason, message string) {
	if name, ok := pod.Labels[v1.LabelOSStable]; ok && name != runtime.GOOS {
		return reasonOSSelector, "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label"
	}
	if pod.Spec.OS != nil && string(pod.Spec.OS.Name) != runtime.GOOS {
		return reasonOSField, "Failed to admit pod as the OS field doesn't match node OS"
	}
	if sc := pod.Spec.SecurityContext; sc != nil && sc.SupplementalGroupsPolicy != nil && *sc.SupplementalGroupsPolicy == v1.SupplementalGroupsPolicyStrict {
		if f := node.Status.Features; f == nil || f.SupplementalGroupsPolicy == nil || !*f.SupplementalGroupsPolicy {
			return reasonGroupsPolicy, fmt.Sprintf("SupplementalGroupsPolicy=%s is not supported in this node", v1.SupplementalGroupsPolicyStrict)
		}
	}
	return "", ""
}

// generalFilter is upstream's: every failing predicate, in order. When node affinity is
// the only failure, the node is fetched from the API server and the pod checked again
// against it (its labels may be newer than the informer's).
func (w *Workers) generalFilter(pod *v1.Pod, node *v1.Node, active []*v1.Pod) []failure {
	fails := w.checkNode(pod, node, active)
	if len(fails) == 0 || w.cfg.Client == nil {
		return fails
	}
	for _, f := range fails {
		if f.reason != predNodeAffinity {
			return fails
		}
	}
	ctx := w.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, nodeGetTimeout)
	defer cancel()
	fresh, err := w.cfg.Client.CoreV1().Nodes().Get(ctx, w.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		klog.FromContext(ctx).Error(err, "Failed to synchronously fetch node info")
		return fails
	}
	return w.checkNode(pod, fresh, active)
}

// checkNode is upstream's scheduler.AdmissionCheck with all failures (resources, node
// affinity and nodeSelector, node name, host ports), then, except for static pods, the
// node's NoExecute taints the pod does not tolerate.
func (w *Workers) checkNode(pod *v1.Pod, node *v1.Node, active []*v1.Pod) []failure {
	fails := w.fitResources(pod, node, active)
	if ok, _ := nodeaffinity.GetRequiredNodeAffinity(pod).Match(node); !ok {
		fails = append(fails, predicateFailure(predNodeAffinity, errNodeAffinity))
	}
	if pod.Spec.NodeName != "" && pod.Spec.NodeName != node.Name {
		fails = append(fails, predicateFailure(predNodeName, errNodeName))
	}
	if hostPortsConflict(pod, active) {
		fails = append(fails, predicateFailure(predNodePorts, errNodePorts))
	}
	if !isStaticPod(pod) {
		noExecute := func(t *v1.Taint) bool { return t.Effect == v1.TaintEffectNoExecute }
		if _, bad := corev1helpers.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, pod.Spec.Tolerations, noExecute, false); bad {
			fails = append(fails, predicateFailure(predTaintToleration, errTaints))
		}
	}
	return fails
}

// isStaticPod is upstream's types.IsStaticPod: a config source other than the API server.
func isStaticPod(pod *v1.Pod) bool {
	src, ok := pod.Annotations[cri.AnnotationConfigSource]
	return ok && src != "api"
}

// fitResources is the scheduler's noderesources fit as the kubelet runs it: room for one
// more pod, then cpu, memory, ephemeral-storage and the other scalar resources (extended,
// hugepages, ...) the pod requests (resource.PodRequests, as upstream; extended resources
// the node does not have are dropped first), each within the node's allocatable minus
// what the active pods request. Without the node's allocatable, cfg's is used.
func (w *Workers) fitResources(pod *v1.Pod, node *v1.Node, active []*v1.Pod) []failure {
	alloc := node.Status.Allocatable
	if len(alloc) == 0 {
		alloc = w.cfg.Allocatable
	}
	var fails []failure
	if q, ok := alloc[v1.ResourcePods]; ok && int64(len(active))+1 > q.Value() {
		fails = append(fails, insufficient(v1.ResourcePods, 1, int64(len(active)), q.Value()))
	} else if !ok && w.cfg.MaxPods > 0 && len(active) >= w.cfg.MaxPods {
		fails = append(fails, insufficient(v1.ResourcePods, 1, int64(len(active)), int64(w.cfg.MaxPods)))
	}
	want := requestValues(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}), alloc, true)
	if len(want) == 0 {
		return fails
	}
	used := map[v1.ResourceName]int64{}
	for _, p := range active {
		reqs := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{UseStatusResources: true, InPlacePodLevelResourcesVerticalScalingEnabled: true})
		for name, v := range requestValues(reqs, nil, false) {
			used[name] += v
		}
	}
	for _, name := range fitOrder(want) {
		capacity := quantityValue(alloc[name], name)
		if want[name] > capacity-used[name] {
			fails = append(fails, insufficient(name, want[name], used[name], capacity))
		}
	}
	return fails
}

// requestValues keeps the non-zero requests the fit checks (cpu in millicores, the others
// in units): cpu, memory, ephemeral-storage and scalar resources; with dropMissing, an
// extended resource alloc lacks is dropped (upstream's removeMissingExtendedResources).
func requestValues(reqs, alloc v1.ResourceList, dropMissing bool) map[v1.ResourceName]int64 {
	out := map[v1.ResourceName]int64{}
	for name, q := range reqs {
		switch {
		case name == v1.ResourceCPU || name == v1.ResourceMemory || name == v1.ResourceEphemeralStorage:
		case isExtendedResource(name):
			if _, ok := alloc[name]; !ok && dropMissing {
				continue
			}
		case !isScalarResource(name):
			continue
		}
		if v := quantityValue(q, name); v > 0 {
			out[name] = v
		}
	}
	return out
}

// fitOrder is the scheduler's order: cpu, memory, ephemeral-storage, then the scalar
// resources (sorted; upstream walks a map).
func fitOrder(want map[v1.ResourceName]int64) []v1.ResourceName {
	var out, scalars []v1.ResourceName
	for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory, v1.ResourceEphemeralStorage} {
		if _, ok := want[name]; ok {
			out = append(out, name)
		}
	}
	for name := range want {
		if name != v1.ResourceCPU && name != v1.ResourceMemory && name != v1.ResourceEphemeralStorage {
			scalars = append(scalars, name)
		}
	}
	slices.Sort(scalars)
	return append(out, scalars...)
}

// isExtendedResource is upstream's v1helper.IsExtendedResourceName: a name outside the
// kubernetes.io domain that is valid as a quota name with "requests." in front.
func isExtendedResource(name v1.ResourceName) bool {
	s := string(name)
	if !strings.Contains(s, "/") || strings.Contains(s, v1.ResourceDefaultNamespacePrefix) || strings.HasPrefix(s, v1.DefaultResourceRequestsPrefix) {
		return false
	}
	return len(validation.IsQualifiedName(v1.DefaultResourceRequestsPrefix+s)) == 0
}

// isScalarResource is upstream's schedutil.IsScalarResourceName: extended, hugepages,
// prefixed native or attachable volume resources.
func isScalarResource(name v1.ResourceName) bool {
	s := string(name)
	return isExtendedResource(name) || strings.HasPrefix(s, v1.ResourceHugePagesPrefix) ||
		strings.Contains(s, v1.ResourceDefaultNamespacePrefix) || strings.HasPrefix(s, v1.ResourceAttachableVolumesPrefix)
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

// hostPorts is upstream's GetHostPorts: the host ports of the containers and of the
// sidecars (init containers that run the pod's whole life), not of other init containers.
func hostPorts(pod *v1.Pod) []hostPort {
	var out []hostPort
	add := func(c *v1.Container) {
		for _, p := range c.Ports {
			if p.HostPort <= 0 {
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
	for i := range pod.Spec.InitContainers {
		if c := &pod.Spec.InitContainers[i]; c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways {
			add(c)
		}
	}
	for i := range pod.Spec.Containers {
		add(&pod.Spec.Containers[i])
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
				allocated, _ := w.cfg.Allocation.Allocated(wk.pod) // a deferred resize does not count
				out = append(out, allocated)
			}
		}
		wk.mu.Unlock()
	}
	return out
}
