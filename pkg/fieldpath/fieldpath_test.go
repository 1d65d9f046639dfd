package fieldpath

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestValue(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u",
		Labels: map[string]string{"b": "2", "a": `say "hi"`}, Annotations: map[string]string{"x": "1"}},
		Spec: v1.PodSpec{NodeName: "n1", ServiceAccountName: "sa"}}
	p := Pod{Pod: pod, PodIPs: []string{"10.0.0.5", "fd00::5"}, HostIPs: []string{"192.168.1.2"}}
	for path, want := range map[string]string{
		"metadata.name": "p", "metadata.namespace": "ns", "metadata.uid": "u",
		"metadata.labels":           "a=\"say \\\"hi\\\"\"\nb=\"2\"",
		"metadata.annotations":      `x="1"`,
		"metadata.labels['b']":      "2",
		"metadata.labels['no']":     "",
		"metadata.annotations['x']": "1",
		"spec.nodeName":             "n1", "spec.serviceAccountName": "sa",
		"status.podIP": "10.0.0.5", "status.podIPs": "10.0.0.5,fd00::5",
		"status.hostIP": "192.168.1.2", "status.hostIPs": "192.168.1.2",
	} {
		if got, err := Value(p, path); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
	if _, err := Value(p, "spec.bogus"); err == nil || err.Error() != "unsupported fieldPath: spec.bogus" {
		t.Errorf("bogus path: %v", err)
	}
	pod.Spec.HostNetwork = true
	if got, _ := Value(p, "status.podIP"); got != "192.168.1.2" {
		t.Errorf("host-network podIP = %q, want the host's", got)
	}
}

func TestResource(t *testing.T) {
	c := &v1.Container{Resources: v1.ResourceRequirements{
		Limits:   v1.ResourceList{v1.ResourceCPU: resource.MustParse("1500m"), v1.ResourceMemory: resource.MustParse("128Mi")},
		Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m")},
	}}
	empty := &v1.Container{}
	alloc := v1.ResourceList{v1.ResourceCPU: resource.MustParse("2"), v1.ResourceMemory: resource.MustParse("4Gi")}
	for _, tc := range []struct {
		c        *v1.Container
		res, div string
		want     string
	}{
		{c, "limits.cpu", "", "2"}, // 1.5 rounded up
		{c, "limits.cpu", "1m", "1500"},
		{c, "requests.cpu", "1m", "250"},
		{c, "limits.memory", "1Mi", "128"},
		{c, "limits.memory", "", "134217728"},
		{c, "requests.memory", "1Mi", "128"}, // the request defaults to the limit
		{empty, "limits.cpu", "1m", "2000"},  // unset limit: node allocatable
		{empty, "limits.memory", "1Gi", "4"},
		{empty, "requests.cpu", "", "0"},
	} {
		sel := &v1.ResourceFieldSelector{Resource: tc.res}
		if tc.div != "" {
			sel.Divisor = resource.MustParse(tc.div)
		}
		if got, err := Resource(tc.c, sel, alloc); err != nil || got != tc.want {
			t.Errorf("%s / %q = %q, %v; want %q", tc.res, tc.div, got, err, tc.want)
		}
	}
	for _, bad := range []string{"limits.gpu", "cpu", "usage.cpu"} {
		if _, err := Resource(c, &v1.ResourceFieldSelector{Resource: bad}, alloc); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestUnsetLimitsPodLevel: a container without its own limit reads the pod-level limit
// where the pod sets one, else the node's allocatable (upstream's downward API).
func TestUnsetLimitsPodLevel(t *testing.T) {
	alloc := v1.ResourceList{v1.ResourceCPU: resource.MustParse("4"), v1.ResourceMemory: resource.MustParse("8Gi")}
	pod := &v1.Pod{Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c"}}}}
	sel := func(r string) *v1.ResourceFieldSelector { return &v1.ResourceFieldSelector{Resource: r} }
	if got, _ := Resource(&pod.Spec.Containers[0], sel("limits.memory"), UnsetLimits(pod, alloc)); got != "8589934592" {
		t.Errorf("no pod-level limit: memory %s, want the allocatable", got)
	}
	pod.Spec.Resources = &v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceMemory: resource.MustParse("1Gi")}}
	lim := UnsetLimits(pod, alloc)
	if got, _ := Resource(&pod.Spec.Containers[0], sel("limits.memory"), lim); got != "1073741824" {
		t.Errorf("pod-level memory limit: %s, want 1Gi", got)
	}
	if got, _ := Resource(&pod.Spec.Containers[0], sel("limits.cpu"), lim); got != "4" {
		t.Errorf("cpu without a pod-level limit: %s, want the allocatable", got)
	}
	if alloc.Memory().String() != "8Gi" {
		t.Errorf("allocatable changed: %v", alloc)
	}
}
