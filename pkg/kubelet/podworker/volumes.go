package podworker

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/volume"
)

var propagation = map[v1.MountPropagationMode]runtimeapi.MountPropagation{
	v1.MountPropagationNone:            runtimeapi.MountPropagation_PROPAGATION_PRIVATE,
	v1.MountPropagationHostToContainer: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER,
	v1.MountPropagationBidirectional:   runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL,
}

// volumeMounts maps a container's volumeMounts onto the pod's prepared volumes: subPath
// and subPathExpr (expanded with the container's env) resolved safely inside the volume,
// content volumes always read-only.
func (w *Workers) volumeMounts(ctx context.Context, pod *v1.Pod, c *v1.Container, env []*runtimeapi.KeyValue) ([]*runtimeapi.Mount, error) {
	if len(c.VolumeMounts) == 0 {
		return nil, nil
	}
	vols, err := w.cfg.Volumes.SetUp(ctx, pod, nil)
	if err != nil {
		return nil, err
	}
	envMap := make(map[string]string, len(env))
	for _, kv := range env {
		envMap[kv.Key] = string(kv.Value)
	}
	var out []*runtimeapi.Mount
	for _, vm := range c.VolumeMounts {
		vol, ok := vols[vm.Name]
		if !ok {
			return nil, fmt.Errorf("cannot find volume %q to mount into container %q", vm.Name, c.Name)
		}
		host := vol.HostPath
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = cri.Expand(vm.SubPathExpr, func(k string) (string, bool) { v, ok := envMap[k]; return v, ok })
		}
		if sub != "" {
			if host, err = volume.SubPath(vol.HostPath, sub); err != nil {
				return nil, err
			}
		}
		mode := v1.MountPropagationNone
		if vm.MountPropagation != nil {
			mode = *vm.MountPropagation
		}
		prop, ok := propagation[mode]
		if !ok {
			return nil, fmt.Errorf("invalid mountPropagation %q for volume %q", mode, vm.Name)
		}
		out = append(out, &runtimeapi.Mount{
			ContainerPath: vm.MountPath, HostPath: host,
			Readonly: vm.ReadOnly || vol.ReadOnly, Propagation: prop,
		})
	}
	return out, nil
}

// hasMountAt reports whether the container mounts a volume at path (it then replaces the
// kubelet-managed file there, as upstream).
func hasMountAt(c *v1.Container, path string) bool {
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == path {
			return true
		}
	}
	return false
}
