package cri

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Pod cgroup names as upstream's cgroup managers make them, for both drivers.
func TestPodCgroupParent(t *testing.T) {
	pod := func(qos v1.PodQOSClass) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "1a2b-3c"}, Status: v1.PodStatus{QOSClass: qos}}
	}
	for _, c := range []struct {
		driver, root string
		qos          v1.PodQOSClass
		want         string
	}{
		{"cgroupfs", "/", v1.PodQOSBestEffort, "/kubepods/besteffort/pod1a2b-3c"},
		{"cgroupfs", "/", v1.PodQOSGuaranteed, "/kubepods/pod1a2b-3c"},
		{"cgroupfs", "/custom/root", v1.PodQOSBurstable, "/custom/root/kubepods/burstable/pod1a2b-3c"},
		{"systemd", "/", v1.PodQOSBestEffort,
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1a2b_3c.slice"},
		{"systemd", "/", v1.PodQOSGuaranteed, "/kubepods.slice/kubepods-pod1a2b_3c.slice"},
		{"systemd", "/", v1.PodQOSBurstable,
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b_3c.slice"},
		// A systemd cgroupRoot is a slice path; its components come first.
		{"systemd", "/node.slice/node-pods.slice", v1.PodQOSGuaranteed,
			"/node.slice/node-pods.slice/node-pods-kubepods.slice/node-pods-kubepods-pod1a2b_3c.slice"},
	} {
		p := pod(c.qos)
		if got := PodCgroupParent(c.driver, c.root, p); got != c.want {
			t.Errorf("%s %s %s: %q, want %q", c.driver, c.root, c.qos, got, c.want)
		}
		sb, err := SandboxConfig(&v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "n", Namespace: "ns", UID: p.UID}, Status: p.Status}, 0,
			SandboxOptions{PodLogsDir: "/logs", CgroupsPerQOS: true, CgroupRoot: c.root, CgroupDriver: c.driver})
		if err != nil || sb.Linux.CgroupParent != c.want {
			t.Errorf("sandbox cgroup parent %v, %v", sb.GetLinux().GetCgroupParent(), err)
		}
	}
}
