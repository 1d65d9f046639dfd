package cri

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// TestQOSClass: the API server's class is kept; without one the class is computed as
// upstream's ComputePodQOS does.
func TestQOSClass(t *testing.T) {
	list := func(kv ...string) v1.ResourceList {
		out := v1.ResourceList{}
		for i := 0; i+1 < len(kv); i += 2 {
			out[v1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
		}
		return out
	}
	c := func(req, lim v1.ResourceList) v1.Container {
		return v1.Container{Resources: v1.ResourceRequirements{Requests: req, Limits: lim}}
	}
	both := list("cpu", "100m", "memory", "64Mi")
	for _, tc := range []struct {
		name string
		pod  v1.Pod
		want v1.PodQOSClass
	}{
		{"status wins", v1.Pod{Status: v1.PodStatus{QOSClass: v1.PodQOSBurstable}}, v1.PodQOSBurstable},
		{"nothing", v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{c(nil, nil)}}}, v1.PodQOSBestEffort},
		{"only other resources", v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{c(list("ephemeral-storage", "1Gi"), nil)}}}, v1.PodQOSBestEffort},
		{"limits equal requests", v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{c(both, both)}}}, v1.PodQOSGuaranteed},
		{"limits only, requests not defaulted (as ComputePodQOS sees it)", v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{c(nil, both)}}}, v1.PodQOSBurstable},
		{"one container short of a limit", v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{c(both, both), c(list("cpu", "100m"), list("cpu", "100m"))}}}, v1.PodQOSBurstable},
		{"requests below limits", v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{c(list("cpu", "50m", "memory", "64Mi"), both)}}}, v1.PodQOSBurstable},
		{"pod-level guaranteed", v1.Pod{Spec: v1.PodSpec{Resources: &v1.ResourceRequirements{Requests: both, Limits: both},
			Containers: []v1.Container{c(nil, nil)}}}, v1.PodQOSGuaranteed},
		{"pod-level cpu only", v1.Pod{Spec: v1.PodSpec{Resources: &v1.ResourceRequirements{Limits: list("cpu", "1")},
			Containers: []v1.Container{c(both, both)}}}, v1.PodQOSBurstable},
	} {
		if got := QOSClass(&tc.pod); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
