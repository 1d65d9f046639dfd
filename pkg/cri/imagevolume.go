package cri

import (
	"maps"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageVolumeSpec is the image an image volume is mounted from, as upstream's
// getImageVolumes passes it: the ref the pull resolved (the image ID), the reference as
// the user wrote it, the pod's runtime handler and annotations.
func ImageVolumeSpec(pod *v1.Pod, src *v1.ImageVolumeSource, ref, runtimeHandler string) *runtimeapi.ImageSpec {
	return &runtimeapi.ImageSpec{
		Image:              ref,
		UserSpecifiedImage: src.Reference,
		RuntimeHandler:     runtimeHandler,
		Annotations:        maps.Clone(pod.Annotations),
	}
}

// ImageVolumeMount is the CRI mount of an image volume at containerPath, as upstream's
// makeMounts: the runtime mounts the image itself, so no HostPath (containerd 2.x refuses
// one); always read-only (the image plugin's attributes, and containerd requires it);
// a subPath selects a folder of the image (ImageSubPath). A runtime that does not know
// the Image field (containerd 1.6) fails CreateContainer on the empty host path instead
// of mounting nothing.
func ImageVolumeMount(containerPath string, image *runtimeapi.ImageSpec, subPath string, prop runtimeapi.MountPropagation) *runtimeapi.Mount {
	return &runtimeapi.Mount{
		ContainerPath: containerPath,
		Image:         image,
		ImageSubPath:  subPath,
		Readonly:      true,
		Propagation:   prop,
	}
}
