package cri

import (
	"testing"

	"google.golang.org/protobuf/proto"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The pod's user namespace reaches the sandbox and each container alike (the runtime
// refuses a difference), and a pod namespace's mappings go on every mount (ID-mapped
// mounts), as upstream.
func TestUserNamespaceOptions(t *testing.T) {
	podNS := &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD,
		Uids: []*runtimeapi.IDMapping{{HostId: 65536, Length: 65536}}, Gids: []*runtimeapi.IDMapping{{HostId: 65536, Length: 65536}}}
	nodeNS := &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "busybox"}}}}
	for _, tc := range []struct {
		name       string
		userns     *runtimeapi.UserNamespace
		wantMapped bool
	}{
		{name: "unset", userns: nil},
		{name: "host users", userns: nodeNS},
		{name: "own user namespace", userns: podNS, wantMapped: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb, err := SandboxConfig(pod, 0, SandboxOptions{NodeName: "n", Userns: tc.userns})
			if err != nil {
				t.Fatal(err)
			}
			mounts := []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/var/lib/kubelet/pods/u/volumes/x"}, {ContainerPath: "/etc/hosts", HostPath: "/h"}}
			c, err := ContainerConfig(pod, &pod.Spec.Containers[0], ContainerOptions{NodeName: "n", Mounts: mounts, Userns: tc.userns})
			if err != nil {
				t.Fatal(err)
			}
			sbNS := sb.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
			cNS := c.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
			if !proto.Equal(sbNS, tc.userns) || !proto.Equal(cNS, tc.userns) {
				t.Errorf("sandbox %v, container %v; want both %v", sbNS, cNS, tc.userns)
			}
			for _, m := range c.Mounts {
				if mapped := len(m.UidMappings) == 1 && len(m.GidMappings) == 1 && m.UidMappings[0].HostId == 65536; mapped != tc.wantMapped {
					t.Errorf("mount %s: uid %v gid %v, want mapped %v", m.ContainerPath, m.UidMappings, m.GidMappings, tc.wantMapped)
				}
			}
		})
	}
}
