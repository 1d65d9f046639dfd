package cri

import (
	"path"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Cgroup drivers (cgroupDriver): how the pod cgroups minikubelet asks the runtime for are
// named. The runtime must be configured alike (containerd: runc's SystemdCgroup).
const (
	CgroupfsDriver = "cgroupfs"
	SystemdDriver  = "systemd"
)

// podCgroupName is the pod's cgroup as upstream names it, component by component:
// <root...>/kubepods[/burstable|/besteffort]/pod<uid>. With the systemd driver the root
// is a slice path (/foo.slice/foo-bar.slice) and stands for its components (foo, bar).
func podCgroupName(driver, root string, pod *v1.Pod) []string {
	return append(qosCgroupName(driver, root, QOSClass(pod)), "pod"+string(pod.UID))
}

// qosCgroupName is a QoS class's cgroup: <root...>/kubepods for Guaranteed (and "", the
// node allocatable cgroup itself), .../burstable, .../besteffort.
func qosCgroupName(driver, root string, class v1.PodQOSClass) []string {
	var name []string
	for _, part := range strings.Split(root, "/") {
		if part == "" {
			continue
		}
		if driver == SystemdDriver {
			part = strings.TrimSuffix(part, ".slice")
			part = part[strings.LastIndex(part, "-")+1:]
		}
		name = append(name, part)
	}
	name = append(name, "kubepods")
	switch class {
	case v1.PodQOSBurstable:
		name = append(name, "burstable")
	case v1.PodQOSBestEffort:
		name = append(name, "besteffort")
	}
	return name
}

// PodCgroupParent is the pod's cgroup parent for the runtime: a cgroupfs path
// (/kubepods/besteffort/pod<uid>) or, with the systemd driver, the expanded slice path
// (/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice, dashes
// in components escaped as underscores), as upstream's cgroup managers name them.
func PodCgroupParent(driver, root string, pod *v1.Pod) string {
	return cgroupPath(driver, podCgroupName(driver, root, pod))
}

// QOSCgroupPath names a QoS class's cgroup as PodCgroupParent names a pod's ("": the node
// allocatable cgroup, kubepods).
func QOSCgroupPath(driver, root string, class v1.PodQOSClass) string {
	return cgroupPath(driver, qosCgroupName(driver, root, class))
}

func cgroupPath(driver string, name []string) string {
	if driver != SystemdDriver {
		return path.Join(append([]string{"/"}, name...)...)
	}
	var b strings.Builder
	for i := range name {
		b.WriteString("/" + systemdSlice(name[:i+1]))
	}
	return b.String()
}

func systemdSlice(name []string) string {
	parts := make([]string, len(name))
	for i, p := range name {
		parts[i] = strings.ReplaceAll(p, "-", "_")
	}
	return strings.Join(parts, "-") + ".slice"
}

// QOSClass is the pod's QoS class: the API server's (status.qosClass), else computed as
// upstream's ComputePodQOS does for a pod that has none yet (a static pod read from a
// file): CPU and memory requests and limits of the pod, or of its containers when the pod
// sets none at pod level.
func QOSClass(pod *v1.Pod) v1.PodQOSClass {
	if pod.Status.QOSClass != "" {
		return pod.Status.QOSClass
	}
	requests, limits := v1.ResourceList{}, v1.ResourceList{}
	add := func(to v1.ResourceList, from v1.ResourceList) (found int) {
		for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
			if q, ok := from[name]; ok && q.Sign() > 0 {
				sum := to[name]
				sum.Add(q)
				to[name] = sum
				found++
			}
		}
		return found
	}
	guaranteed := true
	if r := pod.Spec.Resources; r != nil && add(v1.ResourceList{}, r.Requests)+add(v1.ResourceList{}, r.Limits) > 0 {
		add(requests, r.Requests)
		guaranteed = add(limits, r.Limits) == 2
	} else {
		for _, cs := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
			for i := range cs {
				add(requests, cs[i].Resources.Requests)
				if add(limits, cs[i].Resources.Limits) < 2 {
					guaranteed = false
				}
			}
		}
	}
	if len(requests) == 0 && len(limits) == 0 {
		return v1.PodQOSBestEffort
	}
	for name, req := range requests {
		if lim, ok := limits[name]; !ok || lim.Cmp(req) != 0 {
			guaranteed = false
		}
	}
	if guaranteed && len(requests) == len(limits) {
		return v1.PodQOSGuaranteed
	}
	return v1.PodQOSBurstable
}
