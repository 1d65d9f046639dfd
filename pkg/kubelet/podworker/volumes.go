package podworker

import (
	"context"
	"fmt"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
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
func (w *Workers) volumeMounts(ctx context.Context, pod *v1.Pod, c *v1.Container, env []*runtimeapi.KeyValue, pulls imageVolumePulls) ([]*runtimeapi.Mount, error) {
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
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = cri.Expand(vm.SubPathExpr, func(k string) (string, bool) { v, ok := envMap[k]; return v, ok })
		}
		mode := v1.MountPropagationNone
		if vm.MountPropagation != nil {
			mode = *vm.MountPropagation
		}
		prop, ok := propagation[mode]
		if !ok {
			return nil, fmt.Errorf("invalid mountPropagation %q for volume %q", mode, vm.Name)
		}
		if vol.Image {
			m, err := imageVolumeMount(vm, sub, prop, pulls)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
			continue
		}
		host := vol.HostPath
		if sub != "" {
			if host, err = volume.SubPath(vol.HostPath, sub); err != nil {
				return nil, err
			}
		}
		out = append(out, &runtimeapi.Mount{
			ContainerPath: vm.MountPath, HostPath: host,
			Readonly: vm.ReadOnly || vol.ReadOnly, Propagation: prop,
		})
	}
	return out, nil
}

// volumeDevices maps a container's volumeDevices onto the pod's mapped raw block volumes,
// as upstream's makeBlockVolumes: the device's link in the pod's folder at the container's
// devicePath, "mrw" or "r" for a read-only claim.
func (w *Workers) volumeDevices(ctx context.Context, pod *v1.Pod, c *v1.Container) ([]*runtimeapi.Device, error) {
	if len(c.VolumeDevices) == 0 {
		return nil, nil
	}
	vols, err := w.cfg.Volumes.SetUp(ctx, pod, nil)
	if err != nil {
		return nil, err
	}
	out := make([]*runtimeapi.Device, 0, len(c.VolumeDevices))
	for _, d := range c.VolumeDevices {
		if !filepath.IsAbs(d.DevicePath) {
			return nil, fmt.Errorf("error DevicePath `%s` must be an absolute path", d.DevicePath)
		}
		vol, ok := vols[d.Name]
		if !ok || !vol.Device {
			return nil, fmt.Errorf("cannot find volume %q to pass into container %q", d.Name, c.Name)
		}
		perm := "mrw"
		if vol.ReadOnly {
			perm = "r"
		}
		out = append(out, &runtimeapi.Device{ContainerPath: d.DevicePath, HostPath: vol.HostPath, Permissions: perm})
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

// imageVolumePulls are one sync's pulls of the pod's image volumes, by volume name.
type imageVolumePulls map[string]imageVolumePull

// imageVolumePull is the image to mount, or why it could not be pulled.
type imageVolumePull struct {
	spec *runtimeapi.ImageSpec
	wt   status.Waiting
	err  error
}

// pullImageVolumes pulls the pod's image volumes once per sync that starts containers or
// finds them in crash back-off, before any starts, as upstream's SyncPod (lazyStart ->
// getImageVolumes): each under its pullPolicy, events on the pod. A failed pull holds back
// only the containers that mount it (imageVolumeFailure).
func (w *Workers) pullImageVolumes(ctx context.Context, p *pass) imageVolumePulls {
	if len(p.acts.Start)+len(p.acts.BackOff) == 0 {
		return nil
	}
	pulls := imageVolumePulls{}
	handler := ""
	for i := range p.pod.Spec.Volumes {
		vol := &p.pod.Spec.Volumes[i]
		if vol.Image == nil {
			continue
		}
		if len(pulls) == 0 && p.pod.Spec.RuntimeClassName != nil {
			// Resolved already for the sandbox; a failure now leaves the default handler.
			handler, _ = w.runtimeHandler(ctx, p.pod)
		}
		ref, wt, err := w.images.EnsureVolumeImage(ctx, p.pod, vol.Image)
		if err != nil {
			pulls[vol.Name] = imageVolumePull{wt: wt, err: err}
			continue
		}
		pulls[vol.Name] = imageVolumePull{spec: cri.ImageVolumeSpec(p.pod, vol.Image, ref, handler)}
	}
	return pulls
}

// imageVolumeFailure is why c cannot start when an image volume it mounts failed to pull:
// as upstream's toKubeContainerImageVolumes, a Failed "Error: <reason>" event per such
// mount and the last one's reason and message as the container's waiting state.
func (w *Workers) imageVolumeFailure(pod *v1.Pod, c *v1.Container, pulls imageVolumePulls) (status.Waiting, error) {
	var (
		wt  status.Waiting
		err error
	)
	for _, vm := range c.VolumeMounts {
		if r, ok := pulls[vm.Name]; ok && r.err != nil {
			w.event(pod, c, v1.EventTypeWarning, "Failed", "Error: %s", r.wt.Reason)
			wt, err = r.wt, r.err
		}
	}
	return wt, err
}

// imageVolumeMount is the CRI mount of an image volume: subPath checked as upstream
// (relative, no ".."), then passed to the runtime, which resolves it inside the image.
func imageVolumeMount(vm v1.VolumeMount, sub string, prop runtimeapi.MountPropagation, pulls imageVolumePulls) (*runtimeapi.Mount, error) {
	r, ok := pulls[vm.Name]
	if !ok || r.spec == nil {
		return nil, fmt.Errorf("image volume %q was not pulled", vm.Name)
	}
	if sub != "" {
		if err := volume.CheckSubPath(sub); err != nil {
			return nil, err
		}
	}
	return cri.ImageVolumeMount(vm.MountPath, r.spec, sub, prop), nil
}
