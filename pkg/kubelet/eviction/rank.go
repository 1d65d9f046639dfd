package eviction

import (
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// statsFunc gives a pod's stats from the round's summary.
type statsFunc func(pod *v1.Pod) (statsapi.PodStats, bool)

func podStatsByUID(sum *statsapi.Summary) statsFunc {
	byUID := map[string]statsapi.PodStats{}
	for _, ps := range sum.Pods {
		byUID[ps.PodRef.UID] = ps
	}
	return func(pod *v1.Pod) (statsapi.PodStats, bool) {
		ps, ok := byUID[string(pod.UID)]
		return ps, ok
	}
}

// fsParts are the parts of a pod's disk usage a filesystem signal counts.
type fsParts struct{ rootfs, logs, volumes bool }

// rankFunc orders pods for eviction, first evicted first.
type rankFunc func(pods []*v1.Pod, stats statsFunc)

// rankFor is upstream's ranking of a signal: memory by usage above requests, then
// priority, then usage less requests; PIDs by priority then process count; disk as
// memory, counting what lives on the signal's filesystem (with a dedicated image
// filesystem: logs and local volumes for nodefs, container layers for imagefs).
func rankFor(sig Signal, dedicatedImageFs bool) rankFunc {
	switch sig {
	case SignalMemoryAvailable, SignalAllocatableMemoryAvailable:
		return rankMemory
	case SignalPIDAvailable:
		return rankPIDs
	}
	parts := fsParts{rootfs: true, logs: true, volumes: true}
	if dedicatedImageFs {
		if sig == SignalImageFsAvailable || sig == SignalImageFsInodesFree {
			parts = fsParts{rootfs: true}
		} else {
			parts = fsParts{logs: true, volumes: true}
		}
	}
	res := v1.ResourceEphemeralStorage
	if signalResource[sig] == resourceInodes {
		res = resourceInodes
	}
	return func(pods []*v1.Pod, stats statsFunc) { rankDisk(pods, stats, parts, res) }
}

// sortPods sorts stably by the comparisons in turn; pods without stats go first, as
// upstream's.
func sortPods(pods []*v1.Pod, stats statsFunc, cmps ...func(a, b *v1.Pod, sa, sb statsapi.PodStats) int) {
	slices.SortStableFunc(pods, func(a, b *v1.Pod) int {
		sa, okA := stats(a)
		sb, okB := stats(b)
		if !okA || !okB {
			return cmpTrueFirst(!okA, !okB)
		}
		for _, c := range cmps {
			if r := c(a, b, sa, sb); r != 0 {
				return r
			}
		}
		return 0
	})
}

// cmpTrueFirst orders true before false.
func cmpTrueFirst(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}

// byPodPriority puts lower priority first.
func byPodPriority(a, b *v1.Pod, _, _ statsapi.PodStats) int {
	pa, pb := corev1helpers.PodPriority(a), corev1helpers.PodPriority(b)
	switch {
	case pa < pb:
		return -1
	case pa > pb:
		return 1
	}
	return 0
}

// request is the pod's effective request of res (containers, init containers,
// overhead, pod-level resources), as the scheduler counts it.
func request(pod *v1.Pod, res v1.ResourceName) resource.Quantity {
	q := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})[res]
	return q
}

func memoryUsage(ps statsapi.PodStats) resource.Quantity {
	if ps.Memory == nil || ps.Memory.WorkingSetBytes == nil {
		return *resource.NewQuantity(0, resource.BinarySI)
	}
	return *resource.NewQuantity(int64(*ps.Memory.WorkingSetBytes), resource.BinarySI)
}

func rankMemory(pods []*v1.Pod, stats statsFunc) {
	exceeds := func(a, b *v1.Pod, sa, sb statsapi.PodStats) int {
		ua, ub := memoryUsage(sa), memoryUsage(sb)
		ra, rb := request(a, v1.ResourceMemory), request(b, v1.ResourceMemory)
		return cmpTrueFirst(ua.Cmp(ra) > 0, ub.Cmp(rb) > 0)
	}
	above := func(a, b *v1.Pod, sa, sb statsapi.PodStats) int {
		ua, ub := memoryUsage(sa), memoryUsage(sb)
		ua.Sub(request(a, v1.ResourceMemory))
		ub.Sub(request(b, v1.ResourceMemory))
		return ub.Cmp(ua) // larger first
	}
	sortPods(pods, stats, exceeds, byPodPriority, above)
}

func rankPIDs(pods []*v1.Pod, stats statsFunc) {
	procs := func(_, _ *v1.Pod, sa, sb statsapi.PodStats) int {
		n := func(ps statsapi.PodStats) uint64 {
			if ps.ProcessStats == nil || ps.ProcessStats.ProcessCount == nil {
				return 0
			}
			return *ps.ProcessStats.ProcessCount
		}
		switch na, nb := n(sa), n(sb); {
		case na > nb:
			return -1
		case na < nb:
			return 1
		}
		return 0
	}
	sortPods(pods, stats, byPodPriority, procs)
}

func rankDisk(pods []*v1.Pod, stats statsFunc, parts fsParts, res v1.ResourceName) {
	exceeds := func(a, b *v1.Pod, sa, sb statsapi.PodStats) int {
		ua, ub := diskUsage(a, sa, parts, res), diskUsage(b, sb, parts, res)
		ra, rb := request(a, res), request(b, res)
		return cmpTrueFirst(ua.Cmp(ra) > 0, ub.Cmp(rb) > 0)
	}
	above := func(a, b *v1.Pod, sa, sb statsapi.PodStats) int {
		ua, ub := diskUsage(a, sa, parts, res), diskUsage(b, sb, parts, res)
		// As upstream, the ephemeral-storage request is subtracted for inodes too.
		ua.Sub(request(a, v1.ResourceEphemeralStorage))
		ub.Sub(request(b, v1.ResourceEphemeralStorage))
		return ub.Cmp(ua)
	}
	sortPods(pods, stats, exceeds, byPodPriority, above)
}

// diskUsage is the pod's bytes (or inodes) on the parts of a filesystem: its containers'
// writable layers and logs, and its local volumes (emptyDir, hostPath and the like).
func diskUsage(pod *v1.Pod, ps statsapi.PodStats, parts fsParts, res v1.ResourceName) resource.Quantity {
	var n uint64
	add := func(f *statsapi.FsStats) {
		if f == nil {
			return
		}
		if res == resourceInodes {
			if f.InodesUsed != nil {
				n += *f.InodesUsed
			}
		} else if f.UsedBytes != nil {
			n += *f.UsedBytes
		}
	}
	for _, c := range ps.Containers {
		if parts.rootfs {
			add(c.Rootfs)
		}
		if parts.logs {
			add(c.Logs)
		}
	}
	if parts.volumes {
		local := localVolumes(pod)
		for i := range ps.VolumeStats {
			if local[ps.VolumeStats[i].Name] {
				add(&ps.VolumeStats[i].FsStats)
			}
		}
	}
	format := resource.BinarySI
	if res == resourceInodes {
		format = resource.DecimalSI
	}
	return *resource.NewQuantity(int64(n), format)
}

// localVolumes are the pod's volumes counted on the node's filesystem (upstream's
// localVolumeNames: hostPath, disk-backed emptyDir, gitRepo and configMap).
func localVolumes(pod *v1.Pod) map[string]bool {
	out := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		s := v.VolumeSource
		if s.HostPath != nil || s.EmptyDir != nil && s.EmptyDir.Medium == v1.StorageMediumDefault || s.GitRepo != nil || s.ConfigMap != nil {
			out[v.Name] = true
		}
	}
	return out
}
