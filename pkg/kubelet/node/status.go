package node

import (
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// StatusInputs is everything the node status is derived from.
type StatusInputs struct {
	Machine        Machine
	Addresses      []v1.NodeAddress
	MaxPods        int32
	Reserved       v1.ResourceList // kube + system reserved + hard eviction, subtracted for allocatable
	RuntimeVersion string          // e.g. "containerd://1.6.20"
	KubeletVersion string
	KubeletPort    int32
	// RuntimeErrors says why the node is not ready; empty means ready.
	RuntimeErrors []string
	Pressure      Pressure
	// RuntimeHandlers are the runtime's handlers (RuntimeHandlersKnown: once a ready
	// Status listed them; until then the node keeps what it had).
	RuntimeHandlers      []cri.RuntimeHandler
	RuntimeHandlersKnown bool
	// VolumesInUse is status.volumesInUse (VolumesInUseKnown: the kubelet reports it;
	// otherwise the API's value is kept).
	VolumesInUse      []v1.UniqueVolumeName
	VolumesInUseKnown bool
	// RuntimeFeatures are the runtime's features from the same Status (nil: it reports
	// none, as containerd 1.6; the node keeps what it had, as upstream's setter).
	RuntimeFeatures *cri.RuntimeFeatures
	// Images is status.images, already sorted and cut (NodeImages; ImagesKnown: the
	// kubelet reports it; otherwise the API's value is kept).
	Images      []v1.ContainerImage
	ImagesKnown bool
}

// Pressure is the node's resource pressure as last measured.
type Pressure struct{ Memory, Disk, PID bool }

// condition reasons and messages exactly as the upstream kubelet writes them.
type condSpec struct {
	typ                   v1.NodeConditionType
	trueReason, trueMsg   string
	falseReason, falseMsg string
}

var pressureConds = []condSpec{
	{v1.NodeMemoryPressure, "KubeletHasInsufficientMemory", "kubelet has insufficient memory available", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"},
	{v1.NodeDiskPressure, "KubeletHasDiskPressure", "kubelet has disk pressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"},
	{v1.NodePIDPressure, "KubeletHasInsufficientPID", "kubelet has insufficient PID available", "KubeletHasSufficientPID", "kubelet has sufficient PID available"},
}

// BuildStatus derives the node status from its inputs. Conditions keep their
// lastTransitionTime from old unless their status changed; heartbeats are now.
func BuildStatus(in StatusInputs, old v1.NodeStatus, now metav1.Time) v1.NodeStatus {
	capacity := v1.ResourceList{
		v1.ResourceCPU:              *resource.NewQuantity(int64(in.Machine.CPUs), resource.DecimalSI),
		v1.ResourceMemory:           *resource.NewQuantity(in.Machine.MemoryBytes, resource.BinarySI),
		v1.ResourceEphemeralStorage: *resource.NewQuantity(in.Machine.EphemeralBytes, resource.BinarySI),
		v1.ResourcePods:             *resource.NewQuantity(int64(in.MaxPods), resource.DecimalSI),
		"hugepages-1Gi":             *resource.NewQuantity(0, resource.BinarySI),
		"hugepages-2Mi":             *resource.NewQuantity(0, resource.BinarySI),
	}
	allocatable := v1.ResourceList{}
	for name, q := range capacity {
		q = q.DeepCopy()
		if r, ok := in.Reserved[name]; ok {
			q.Sub(r)
			if q.Sign() < 0 {
				q.Set(0)
			}
		}
		allocatable[name] = q
	}

	pressure := []bool{in.Pressure.Memory, in.Pressure.Disk, in.Pressure.PID}
	var conds []v1.NodeCondition
	for i, spec := range pressureConds {
		c := v1.NodeCondition{Type: spec.typ, Status: v1.ConditionFalse, Reason: spec.falseReason, Message: spec.falseMsg}
		if pressure[i] {
			c.Status, c.Reason, c.Message = v1.ConditionTrue, spec.trueReason, spec.trueMsg
		}
		conds = append(conds, c)
	}
	ready := v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"}
	if len(in.RuntimeErrors) > 0 {
		ready.Status, ready.Reason, ready.Message = v1.ConditionFalse, "KubeletNotReady", joinErrors(in.RuntimeErrors)
	}
	conds = append(conds, ready)
	for i := range conds {
		conds[i].LastHeartbeatTime = now
		conds[i].LastTransitionTime = now
		if prev := findCondition(old.Conditions, conds[i].Type); prev != nil && prev.Status == conds[i].Status {
			conds[i].LastTransitionTime = prev.LastTransitionTime
		}
	}

	handlers, features := old.RuntimeHandlers, old.Features
	if in.RuntimeHandlersKnown {
		handlers = nodeRuntimeHandlers(in.RuntimeHandlers)
	}
	if f := nodeFeatures(in.RuntimeFeatures); f != nil {
		features = f
	}
	return v1.NodeStatus{
		Capacity:    capacity,
		Allocatable: allocatable,
		Conditions:  conds,
		Addresses:   in.Addresses,
		DaemonEndpoints: v1.NodeDaemonEndpoints{
			KubeletEndpoint: v1.DaemonEndpoint{Port: in.KubeletPort},
		},
		NodeInfo: v1.NodeSystemInfo{
			MachineID:               in.Machine.MachineID,
			SystemUUID:              in.Machine.SystemUUID,
			BootID:                  in.Machine.BootID,
			KernelVersion:           in.Machine.KernelVersion,
			OSImage:                 in.Machine.OSImage,
			ContainerRuntimeVersion: in.RuntimeVersion,
			KubeletVersion:          in.KubeletVersion,
			OperatingSystem:         in.Machine.OperatingSystem,
			Architecture:            in.Machine.Architecture,
		},
		// VolumesAttached (the attach/detach controller's) and Config are left to the
		// API's values.
		Images:          images(in, old),
		VolumesInUse:    volumesInUse(in, old),
		VolumesAttached: old.VolumesAttached,
		// declaredFeatures are not reported.
		Features:        features,
		RuntimeHandlers: handlers,
	}
}

func images(in StatusInputs, old v1.NodeStatus) []v1.ContainerImage {
	if !in.ImagesKnown {
		return old.Images
	}
	return in.Images
}

// nodeRuntimeHandlers is status.runtimeHandlers as upstream's RuntimeHandlers setter
// (nodestatus/setters.go) writes it: every handler, the default one named "", with both
// features stated; none for a runtime that lists none (containerd 1.6).
func nodeRuntimeHandlers(hs []cri.RuntimeHandler) []v1.NodeRuntimeHandler {
	out := make([]v1.NodeRuntimeHandler, len(hs))
	for i, h := range hs {
		out[i] = v1.NodeRuntimeHandler{Name: h.Name, Features: &v1.NodeRuntimeHandlerFeatures{
			RecursiveReadOnlyMounts: new(h.RecursiveReadOnlyMounts), UserNamespaces: new(h.UserNamespaces)}}
	}
	return out
}

// joinErrors formats like k8s.io/apimachinery's aggregate error: one message alone, or "[a, b]".
func joinErrors(msgs []string) string {
	if len(msgs) == 1 {
		return msgs[0]
	}
	return "[" + strings.Join(msgs, ", ") + "]"
}

func findCondition(conds []v1.NodeCondition, t v1.NodeConditionType) *v1.NodeCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// StatusChanged reports whether new differs from old in anything but heartbeat times.
func StatusChanged(old, new v1.NodeStatus) bool {
	strip := func(s v1.NodeStatus) v1.NodeStatus {
		s = *s.DeepCopy()
		for i := range s.Conditions {
			s.Conditions[i].LastHeartbeatTime = metav1.Time{}
		}
		return s
	}
	return !apiequality.Semantic.DeepEqual(strip(old), strip(new))
}

// conditionEvents returns the node events upstream records when a condition changes
// (including the first time it is reported).
func conditionEvents(old, new []v1.NodeCondition) []string {
	var out []string
	for _, c := range new {
		prev := findCondition(old, c.Type)
		if prev != nil && prev.Status == c.Status {
			continue
		}
		switch {
		case c.Type == v1.NodeReady && c.Status == v1.ConditionTrue:
			out = append(out, "NodeReady")
		case c.Type == v1.NodeReady:
			if prev != nil { // upstream records NotReady only on a transition
				out = append(out, "NodeNotReady")
			}
		default:
			for _, spec := range pressureConds {
				if spec.typ == c.Type {
					out = append(out, "Node"+strings.TrimPrefix(map[bool]string{true: spec.trueReason, false: spec.falseReason}[c.Status == v1.ConditionTrue], "Kubelet"))
				}
			}
		}
	}
	return out
}

// volumesInUse is upstream's VolumesInUse setter: the mounted attachable volumes, sorted;
// none is an empty list, not the API's old one.
func volumesInUse(in StatusInputs, old v1.NodeStatus) []v1.UniqueVolumeName {
	if !in.VolumesInUseKnown {
		return old.VolumesInUse
	}
	if len(in.VolumesInUse) == 0 {
		return nil
	}
	out := slices.Clone(in.VolumesInUse)
	slices.Sort(out)
	return out
}

// nodeFeatures is upstream's NodeFeatures setter: only supplementalGroupsPolicy, from the
// runtime's features (nil when the runtime reports none).
func nodeFeatures(f *cri.RuntimeFeatures) *v1.NodeFeatures {
	if f == nil {
		return nil
	}
	return &v1.NodeFeatures{SupplementalGroupsPolicy: new(f.SupplementalGroupsPolicy)}
}

// WithOwnFeatures is n, as an informer holds it, with the features this kubelet reports
// for its runtime (h's, once known) when n has none yet: the status write that declares
// them can reach the API, and a pod created after it, before the node informer sees it.
// Pods are admitted against what the node reports (upstream's getNodeAnyWay).
func WithOwnFeatures(n *v1.Node, h RuntimeHandlers) *v1.Node {
	if n.Status.Features != nil || h == nil || !h.Known() {
		return n
	}
	f := nodeFeatures(h.Features())
	if f == nil {
		return n
	}
	n = n.DeepCopy()
	n.Status.Features = f
	return n
}
