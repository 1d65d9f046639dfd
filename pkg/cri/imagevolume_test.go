package cri

import (
	"testing"

	"google.golang.org/protobuf/proto"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestImageVolumeMount(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{"a": "b"}}}
	src := &v1.ImageVolumeSource{Reference: "busybox:1.36", PullPolicy: v1.PullIfNotPresent}
	spec := ImageVolumeSpec(pod, src, "sha256:abc", "runc")
	wantSpec := &runtimeapi.ImageSpec{Image: "sha256:abc", UserSpecifiedImage: "busybox:1.36", RuntimeHandler: "runc", Annotations: map[string]string{"a": "b"}}
	if !proto.Equal(spec, wantSpec) {
		t.Fatalf("spec = %v, want %v", spec, wantSpec)
	}
	pod.Annotations["a"] = "changed"
	if spec.Annotations["a"] != "b" {
		t.Error("the spec shares the pod's annotations map")
	}
	for _, tc := range []struct {
		name, path, sub string
		prop            runtimeapi.MountPropagation
		want            *runtimeapi.Mount
	}{
		{name: "whole image", path: "/img",
			want: &runtimeapi.Mount{ContainerPath: "/img", Image: wantSpec, Readonly: true}},
		{name: "subPath", path: "/tools", sub: "bin",
			want: &runtimeapi.Mount{ContainerPath: "/tools", Image: wantSpec, ImageSubPath: "bin", Readonly: true}},
		{name: "propagation kept", path: "/img", prop: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER,
			want: &runtimeapi.Mount{ContainerPath: "/img", Image: wantSpec, Readonly: true, Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}},
	} {
		got := ImageVolumeMount(tc.path, spec, tc.sub, tc.prop)
		if !proto.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
		if got.HostPath != "" || !got.Readonly {
			t.Errorf("%s: an image volume needs no host path and read-only: %v", tc.name, got)
		}
	}
}
