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
	switch pod.Status.QOSClass {
	case v1.PodQOSBurstable:
		name = append(name, "burstable")
	case v1.PodQOSBestEffort:
		name = append(name, "besteffort")
	}
	return append(name, "pod"+string(pod.UID))
}

// PodCgroupParent is the pod's cgroup parent for the runtime: a cgroupfs path
// (/kubepods/besteffort/pod<uid>) or, with the systemd driver, the expanded slice path
// (/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid>.slice, dashes
// in components escaped as underscores), as upstream's cgroup managers name them.
func PodCgroupParent(driver, root string, pod *v1.Pod) string {
	name := podCgroupName(driver, root, pod)
	if driver != SystemdDriver {
		return path.Join(append([]string{"/"}, name...)...)
	}
	var b strings.Builder
	for i := range name {
		b.WriteString("/" + systemdSlice(name[:i+1]))
	}
	return b.String()
}

// PodSlice is the pod's systemd slice unit (systemd driver), e.g.
// kubepods-besteffort-pod<uid>.slice.
func PodSlice(root string, pod *v1.Pod) string {
	return systemdSlice(podCgroupName(SystemdDriver, root, pod))
}

func systemdSlice(name []string) string {
	parts := make([]string, len(name))
	for i, p := range name {
		parts[i] = strings.ReplaceAll(p, "-", "_")
	}
	return strings.Join(parts, "-") + ".slice"
}
