package cri

import (
	"reflect"
	"testing"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestNewContainerUser(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *runtimeapi.ContainerUser
		want *v1.ContainerUser
	}{
		{"none (containerd 1.6)", nil, nil},
		{"linux", &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{Uid: 0, Gid: 0, SupplementalGroups: []int64{0}}},
			&v1.ContainerUser{Linux: &v1.LinuxContainerUser{UID: 0, GID: 0, SupplementalGroups: []int64{0}}}},
		{"empty", &runtimeapi.ContainerUser{}, &v1.ContainerUser{}},
	} {
		got := NewContainer("sb", &runtimeapi.ContainerStatus{Id: "c", User: tc.in}).User
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
