package status

import (
	"math"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/kubelet/cm"
)

// Resources in the status, as upstream v1.37 fills them with its default feature gates
// (InPlacePodVerticalScaling GA, PodLevelResources and
// InPlacePodLevelResourcesVerticalScaling beta and on, DRANodeAllocatableResources off).
// minikubelet resizes nothing in place, so what is allocated is the pod's spec.

// Actuated is what the node reports as applied; the zero value (nothing read) is what
// upstream sees with cgroupsPerQOS false and a runtime that reports no resources.
type Actuated struct {
	// PodCgroup is the pod cgroup's configuration; nil: not read (no pod cgroups).
	PodCgroup *PodCgroup
	// Containers are the resources the runtime reports in a container's CRI status, by
	// container ID (without the runtime prefix); a missing or nil entry reports none.
	Containers map[string]*ContainerResources
}

// PodCgroup holds the pod cgroup's values as upstream's pod container manager reads them
// (cgroup v2's cpu.weight already converted to shares); nil: not read.
type PodCgroup struct {
	CPUShares *uint64
	CPUQuota  *int64 // -1: unlimited
	CPUPeriod *uint64
	Memory    *int64 // limit in bytes
}

// ContainerResources is upstream's kubecontainer.ContainerResources: a running
// container's resources as reported by the runtime; nil fields are not reported.
type ContainerResources struct {
	CPURequest, CPULimit, MemoryRequest, MemoryLimit *resource.Quantity
}

// cgroup constants of upstream's pkg/kubelet/cm (Linux).
const (
	minShares        = 2
	maxShares        = 262144
	sharesPerCPU     = 1024
	milliCPUToCPU    = 1000
	minMilliCPULimit = 10
)

// podResourcesOpts are the options upstream passes to the resource helpers: pod-level
// resources included (PodLevelResources on), DRA claim status not used.
var podResourcesOpts = resourcehelper.PodResourcesOptions{}

// podResources is the pod-level status.resources and status.allocatedResources
// (upstream kubelet_pods.go generateAPIPodStatus: convertToAPIPodLevelResourcesStatus
// and AllocatedResources = PodRequests).
func podResources(pod *v1.Pod, old v1.PodStatus, act Actuated) (*v1.ResourceRequirements, v1.ResourceList) {
	alloc := nonEmpty(resourcehelper.PodRequests(pod, podResourcesOpts))
	if pod.Status.Phase != v1.PodRunning {
		return effectiveAllocated(pod), alloc
	}
	return runningPodResources(pod, old, act.PodCgroup), alloc
}

// effectiveAllocated: the pod-level resources with the pod's summed requests and limits.
func effectiveAllocated(pod *v1.Pod) *v1.ResourceRequirements {
	r := pod.Spec.Resources.DeepCopy()
	if r == nil {
		r = &v1.ResourceRequirements{}
	}
	r.Requests = nonEmpty(resourcehelper.PodRequests(pod, podResourcesOpts))
	r.Limits = nonEmpty(resourcehelper.PodLimits(pod, podResourcesOpts))
	return r
}

// runningPodResources: a running pod's resources are the pod-level spec's, with what the
// pod cgroup holds for CPU and the memory limit (values at the cgroup floor keep the
// allocated one), the summed memory request, and, when the cgroup could not tell, the
// previous status's values if the pod was running then too.
func runningPodResources(pod *v1.Pod, old v1.PodStatus, cg *PodCgroup) *v1.ResourceRequirements {
	r := pod.Spec.Resources.DeepCopy()
	if r == nil {
		r = &v1.ResourceRequirements{}
	}
	r.Requests, r.Limits = copyList(r.Requests), copyList(r.Limits)
	var oldReq, oldLim v1.ResourceList
	if old.Resources != nil && old.Phase == v1.PodRunning {
		oldReq, oldLim = old.Resources.Requests, old.Resources.Limits
	}
	if q := cgroupCPURequest(cg); q != nil {
		allocated := r.Requests.Cpu().MilliValue()
		if q.MilliValue() > minShares || allocated > minShares {
			if cg.CPUShares == nil || !sharesEqualAfterV2RoundTrip(cm.MilliCPUToShares(allocated), *cg.CPUShares) {
				r.Requests[v1.ResourceCPU] = *q
			}
		}
	} else {
		keep(v1.ResourceCPU, oldReq, r.Requests)
	}
	if _, ok := r.Requests[v1.ResourceMemory]; !ok {
		if m, ok := resourcehelper.PodRequests(pod, podResourcesOpts)[v1.ResourceMemory]; ok {
			r.Requests[v1.ResourceMemory] = m
		}
	}
	if q := cgroupCPULimit(cg); q != nil {
		if q.MilliValue() > minMilliCPULimit || r.Limits.Cpu().MilliValue() > minMilliCPULimit {
			r.Limits[v1.ResourceCPU] = *q
		}
	} else {
		keep(v1.ResourceCPU, oldLim, r.Limits)
	}
	if cg != nil && cg.Memory != nil && *cg.Memory > 0 {
		r.Limits[v1.ResourceMemory] = *resource.NewQuantity(*cg.Memory, resource.BinarySI)
	} else {
		keep(v1.ResourceMemory, oldLim, r.Limits)
	}
	r.Requests, r.Limits = nonEmpty(r.Requests), nonEmpty(r.Limits)
	return r
}

// setContainerResources fills a container status's resources and allocatedResources
// from the newest instance of the container, as upstream does for every container the
// runtime has (kubelet_pods.go convertToAPIContainerStatuses, InPlacePodVerticalScaling):
// regular, init, sidecar and ephemeral containers alike.
func setContainerResources(cs *v1.ContainerStatus, c *v1.Container, latest *cri.Container, old []v1.ContainerStatus, act Actuated) {
	cs.AllocatedResources = c.Resources.DeepCopy().Requests
	if latest.State != cri.StateRunning {
		cs.Resources = c.Resources.DeepCopy() // not running: the allocated resources
		return
	}
	var prev *v1.ContainerStatus
	for i := range old {
		if old[i].Name == c.Name {
			prev = &old[i]
		}
	}
	// A value the runtime does not report stays as the previous status had it, if that
	// status was of this same instance running.
	var oldReq, oldLim v1.ResourceList
	if prev != nil && prev.State.Running != nil && prev.ContainerID == cs.ContainerID && prev.Resources != nil {
		oldReq, oldLim = prev.Resources.Requests, prev.Resources.Limits
	}
	rr := act.Containers[latest.ID]
	if rr == nil {
		rr = &ContainerResources{}
	}
	r := c.Resources.DeepCopy()
	if r.Limits != nil {
		actual(v1.ResourceCPU, rr.CPULimit, minMilliCPULimit, oldLim, r.Limits)
		actual(v1.ResourceMemory, rr.MemoryLimit, -1, oldLim, r.Limits)
	}
	if r.Requests != nil {
		actual(v1.ResourceCPU, rr.CPURequest, minShares, oldReq, r.Requests)
		actual(v1.ResourceMemory, rr.MemoryRequest, -1, oldReq, r.Requests)
	}
	cs.Resources = r
}

// actual sets list[name] to the reported value q unless both q and the allocated value
// are at or below floor (milli-units; -1: no floor); with nothing reported, the old value.
func actual(name v1.ResourceName, q *resource.Quantity, floor int64, old, list v1.ResourceList) {
	if q == nil {
		keep(name, old, list)
		return
	}
	allocated := list[name]
	if floor < 0 || q.MilliValue() > floor || allocated.MilliValue() > floor {
		list[name] = q.DeepCopy()
	}
}

// keep copies name's old value, if any, into list.
func keep(name v1.ResourceName, old, list v1.ResourceList) {
	if q, ok := old[name]; ok {
		list[name] = q.DeepCopy()
	}
}

// cgroupCPURequest is upstream's cm.CPURequestsFromConfig.
func cgroupCPURequest(cg *PodCgroup) *resource.Quantity {
	if cg == nil || cg.CPUShares == nil || *cg.CPUShares == 0 {
		return nil
	}
	shares := int64(*cg.CPUShares)
	if shares < minShares {
		return nil
	}
	milli := int64(math.Ceil(float64(shares*milliCPUToCPU) / float64(sharesPerCPU)))
	return resource.NewMilliQuantity(milli, resource.DecimalSI)
}

// cgroupCPULimit is upstream's cm.CPULimitsFromConfig.
func cgroupCPULimit(cg *PodCgroup) *resource.Quantity {
	if cg == nil || cg.CPUPeriod == nil || *cg.CPUPeriod == 0 || cg.CPUQuota == nil || *cg.CPUQuota == -1 {
		return nil
	}
	milli := *cg.CPUQuota * milliCPUToCPU / int64(*cg.CPUPeriod)
	if milli <= 0 {
		return nil
	}
	return resource.NewMilliQuantity(milli, resource.DecimalSI)
}

// sharesEqualAfterV2RoundTrip is upstream's cm.CPUSharesEqualAfterV2RoundTrip: shares
// written as cgroup v2 cpu.weight and read back as shares.
func sharesEqualAfterV2RoundTrip(allocated, readback uint64) bool {
	weight := uint64(10000)
	if allocated < maxShares {
		weight = 1 + (allocated-2)*9999/262142
	}
	return (weight-1)*262142/9999+2 == readback
}

func copyList(l v1.ResourceList) v1.ResourceList {
	out := make(v1.ResourceList, len(l))
	for k, v := range l {
		out[k] = v.DeepCopy()
	}
	return out
}

// nonEmpty is nil for an empty list (the same JSON, and equal to what the API returns).
func nonEmpty(l v1.ResourceList) v1.ResourceList {
	if len(l) == 0 {
		return nil
	}
	return l
}
