// Package cm is the node's cgroup tree as upstream's container manager keeps it: the
// node allocatable cgroup (kubepods), the burstable and besteffort QoS cgroups under it,
// and a cgroup per pod with the pod's limits, made before the pod's sandbox. This file
// holds the pure part: which values each cgroup gets.
package cm

import (
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// Config is one cgroup's settings (upstream's ResourceConfig); nil fields are left as
// they are.
type Config struct {
	CPUShares *uint64
	CPUQuota  *int64 // -1: unlimited
	CPUPeriod *uint64
	Memory    *int64 // limit in bytes
	PidsLimit *int64
	// HugePageLimit is the limit in bytes by page size as runc names it ("2MB").
	HugePageLimit map[string]int64
}

// Upstream's cgroup constants (pkg/kubelet/cm, Linux).
const (
	MinShares     = 2
	maxShares     = 262144
	sharesPerCPU  = 1024
	milliCPUToCPU = 1000
	// minQuotaPeriod is the smallest CFS quota the kernel takes (1 ms), as upstream's
	// MilliCPUToQuota floors it.
	minQuotaPeriod = 1000
	// DefaultCPUPeriod is the CFS period upstream uses (cpuCFSQuotaPeriod 100ms) in µs.
	DefaultCPUPeriod = 100000
)

// MilliCPUToShares converts milli-CPU to CFS shares, floored at MinShares and capped.
func MilliCPUToShares(milliCPU int64) uint64 {
	if milliCPU == 0 {
		return MinShares
	}
	shares := milliCPU * sharesPerCPU / milliCPUToCPU
	switch {
	case shares < MinShares:
		return MinShares
	case shares > maxShares:
		return maxShares
	}
	return uint64(shares)
}

// MilliCPUToQuota converts a milli-CPU limit to a CFS quota for period (µs); 0 is no
// limit (0 quota: the caller leaves the cgroup unlimited).
func MilliCPUToQuota(milliCPU, period int64) int64 {
	if milliCPU == 0 {
		return 0
	}
	quota := milliCPU * period / milliCPUToCPU
	if quota < minQuotaPeriod {
		quota = minQuotaPeriod
	}
	return quota
}

// PodOptions are the kubelet settings a pod's cgroup depends on.
type PodOptions struct {
	// EnforceCPULimits is cpuCFSQuota: false leaves CPU limits to the containers.
	EnforceCPULimits bool
	CPUPeriod        uint64 // µs; 0: DefaultCPUPeriod
	// PidsLimit is podPidsLimit; <= 0: no limit.
	PidsLimit int64
	// HugePageSizes are the machine's page sizes ("2MB"): each gets a limit, 0 unless the
	// pod asks for pages of that size.
	HugePageSizes []string
}

// ForPod is the pod cgroup's settings as upstream's ResourceConfigForPod makes them (pod
// overhead and pod-level resources counted): Guaranteed pods get shares, quota and memory
// limit; Burstable pods shares, and quota or memory limit only when every container sets
// that limit (or the pod does); BestEffort pods the minimum shares.
func ForPod(pod *v1.Pod, o PodOptions) Config {
	period := o.CPUPeriod
	if period == 0 {
		period = DefaultCPUPeriod
	}
	opts := resourcehelper.PodResourcesOptions{}
	reqs := resourcehelper.PodRequests(pod, opts)
	limits := resourcehelper.PodLimits(pod, opts)
	cpuDeclared, memDeclared := limitsDeclared(pod)
	shares := MilliCPUToShares(reqs.Cpu().MilliValue())
	quota := MilliCPUToQuota(limits.Cpu().MilliValue(), int64(period))
	if !o.EnforceCPULimits {
		quota = -1
	}
	mem := limits.Memory().Value()
	var c Config
	switch cri.QOSClass(pod) {
	case v1.PodQOSGuaranteed:
		c = Config{CPUShares: &shares, CPUQuota: &quota, CPUPeriod: &period, Memory: &mem}
	case v1.PodQOSBurstable:
		c.CPUShares = &shares
		if cpuDeclared {
			c.CPUQuota, c.CPUPeriod = &quota, &period
		}
		if memDeclared {
			c.Memory = &mem
		}
	default:
		min := uint64(MinShares)
		c.CPUShares = &min
	}
	c.HugePageLimit = hugePages(reqs, o.HugePageSizes)
	if o.PidsLimit > 0 {
		pids := o.PidsLimit
		c.PidsLimit = &pids
	}
	return c
}

// limitsDeclared: whether every init and regular container sets a CPU (memory) limit, or
// the pod sets one at pod level.
func limitsDeclared(pod *v1.Pod) (cpu, mem bool) {
	cpu, mem = true, true
	for _, cs := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if cs[i].Resources.Limits.Cpu().IsZero() {
				cpu = false
			}
			if cs[i].Resources.Limits.Memory().IsZero() {
				mem = false
			}
		}
	}
	if r := pod.Spec.Resources; r != nil {
		cpu = cpu || !r.Limits.Cpu().IsZero()
		mem = mem || !r.Limits.Memory().IsZero()
	}
	return cpu, mem
}

// hugePages: a limit for each of the machine's page sizes, the requested bytes or 0.
func hugePages(reqs v1.ResourceList, sizes []string) map[string]int64 {
	if len(sizes) == 0 {
		return nil
	}
	out := make(map[string]int64, len(sizes))
	for _, size := range sizes {
		out[size] = 0
	}
	for name, q := range reqs {
		if size, ok := cri.HugePageSize(name); ok {
			out[size] = q.Value()
		}
	}
	return out
}

// ForNode is the node allocatable cgroup's settings (kubepods): CPU shares, memory and
// PIDs of allocatable (capacity less kubeReserved and systemReserved when pods are
// enforced, else capacity), and every huge page size's capacity.
func ForNode(allocatable v1.ResourceList) Config {
	var c Config
	if q, ok := allocatable[v1.ResourceCPU]; ok {
		shares := MilliCPUToShares(q.MilliValue())
		c.CPUShares = &shares
	}
	if q, ok := allocatable[v1.ResourceMemory]; ok {
		mem := q.Value()
		c.Memory = &mem
	}
	if q, ok := allocatable[pidResource]; ok {
		pids := q.Value()
		c.PidsLimit = &pids
	}
	for name, q := range allocatable {
		if size, ok := cri.HugePageSize(name); ok {
			if c.HugePageLimit == nil {
				c.HugePageLimit = map[string]int64{}
			}
			c.HugePageLimit[size] = q.Value()
		}
	}
	return c
}

// ForQOS are the burstable and besteffort cgroups' settings: burstable's shares are the
// Burstable pods' summed CPU requests, besteffort's the minimum; huge pages unlimited in
// both, as upstream's QoS manager sets them.
func ForQOS(pods []*v1.Pod, hugePageSizes []string) (burstable, bestEffort Config) {
	var milli int64
	for _, p := range pods {
		if cri.QOSClass(p) == v1.PodQOSBurstable {
			reqs := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})
			milli += reqs.Cpu().MilliValue()
		}
	}
	bShares, beShares := MilliCPUToShares(milli), uint64(MinShares)
	burstable.CPUShares, bestEffort.CPUShares = &bShares, &beShares
	if len(hugePageSizes) > 0 {
		burstable.HugePageLimit, bestEffort.HugePageLimit = map[string]int64{}, map[string]int64{}
		for _, size := range hugePageSizes {
			burstable.HugePageLimit[size], bestEffort.HugePageLimit[size] = unlimited, unlimited
		}
	}
	return burstable, bestEffort
}

// unlimited is the largest limit, as upstream sets huge pages on QoS cgroups (int64 max).
const unlimited = int64(1<<63 - 1)

// NodeAllocatable is what the kubepods cgroup is limited to, as upstream's node allocatable
// cgroup: capacity (CPU, memory, huge pages, and PIDs as pidMax) less reserved when pods
// are enforced (enforceNodeAllocatable has "pods"), else the capacity itself.
func NodeAllocatable(capacity, reserved v1.ResourceList, pidMax int64, enforcePods bool) v1.ResourceList {
	out := v1.ResourceList{}
	for name, q := range capacity {
		if name == v1.ResourceCPU || name == v1.ResourceMemory || strings.HasPrefix(string(name), v1.ResourceHugePagesPrefix) {
			out[name] = q.DeepCopy()
		}
	}
	if pidMax > 0 {
		out[pidResource] = *resource.NewQuantity(pidMax, resource.DecimalSI)
	}
	if !enforcePods {
		return out
	}
	for name, r := range reserved {
		if q, ok := out[name]; ok {
			q.Sub(r)
			if q.Sign() < 0 {
				q.Set(0)
			}
			out[name] = q
		}
	}
	return out
}

// pidResource is the node's PID capacity as upstream names it internally (pid).
const pidResource v1.ResourceName = "pid"
