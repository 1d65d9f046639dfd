package cri

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// An ephemeral container with a target joins the target's process namespace, unless the
// pod's processes are shared already (hostPID, shareProcessNamespace).
func TestContainerConfigTargetPID(t *testing.T) {
	yes := true
	cases := []struct {
		name     string
		spec     func(*v1.PodSpec)
		target   string
		wantMode runtimeapi.NamespaceMode
		wantID   string
	}{
		{"no target", func(*v1.PodSpec) {}, "", runtimeapi.NamespaceMode_CONTAINER, ""},
		{"target", func(*v1.PodSpec) {}, "abc", runtimeapi.NamespaceMode_TARGET, "abc"},
		{"hostPID wins", func(s *v1.PodSpec) { s.HostPID = true }, "abc", runtimeapi.NamespaceMode_NODE, ""},
		{"shared namespace wins", func(s *v1.PodSpec) { s.ShareProcessNamespace = &yes }, "abc", runtimeapi.NamespaceMode_POD, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}}
			tc.spec(&pod.Spec)
			c := &v1.Container{Name: "debugger", Image: "busybox"}
			cfg, err := ContainerConfig(pod, c, ContainerOptions{TargetID: tc.target})
			if err != nil {
				t.Fatal(err)
			}
			ns := cfg.Linux.SecurityContext.NamespaceOptions
			if ns.Pid != tc.wantMode || ns.TargetId != tc.wantID {
				t.Errorf("pid %s target %q, want %s %q", ns.Pid, ns.TargetId, tc.wantMode, tc.wantID)
			}
		})
	}
}
