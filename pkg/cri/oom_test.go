package cri

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
)

// TestOOMScoreAdj: upstream's GetContainerOOMScoreAdjust on a 4000-byte machine (the
// Guaranteed and node-critical -997 clamped to 0 here, see oomScoreAdj).
func TestOOMScoreAdj(t *testing.T) {
	const capacity = 4000
	mem := func(req string) v1.ResourceRequirements {
		return v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceMemory: resource.MustParse(req)}}
	}
	burstable := func(cs ...v1.Container) *v1.Pod {
		return &v1.Pod{Spec: v1.PodSpec{Containers: cs}, Status: v1.PodStatus{QOSClass: v1.PodQOSBurstable}}
	}
	sidecarPod := burstable(v1.Container{Name: "app", Resources: mem("2000")})
	sidecarPod.Spec.InitContainers = []v1.Container{{Name: "side", Resources: mem("40"), RestartPolicy: ptr.To(v1.ContainerRestartPolicyAlways)}}
	critical := burstable(v1.Container{Name: "c", Resources: mem("40")})
	critical.Spec.PriorityClassName, critical.Spec.Priority = "system-node-critical", ptr.To(int32(2000001000))
	for _, tc := range []struct {
		name string
		pod  *v1.Pod
		c    *v1.Container
		cap  int64
		want int64
	}{
		{"guaranteed", &v1.Pod{Status: v1.PodStatus{QOSClass: v1.PodQOSGuaranteed}}, &v1.Container{}, capacity, 0},
		{"besteffort", &v1.Pod{Status: v1.PodStatus{QOSClass: v1.PodQOSBestEffort}}, &v1.Container{}, capacity, 1000},
		{"burstable, 10% of memory", burstable(), &v1.Container{Resources: mem("400")}, capacity, 900},
		{"burstable, no memory request", burstable(), &v1.Container{}, capacity, 999},
		{"burstable, above the machine", burstable(), &v1.Container{Resources: mem("8000")}, capacity, 3},
		{"burstable, capacity unknown", burstable(), &v1.Container{Resources: mem("400")}, 0, 999},
		{"sidecar no higher than the smallest regular container", sidecarPod, &sidecarPod.Spec.InitContainers[0], capacity, 500},
		{"node-critical", critical, &critical.Spec.Containers[0], capacity, 0},
	} {
		if got := oomScoreAdj(tc.pod, tc.c, tc.cap); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}
