package podworker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
)

// backOffKey identifies a container's crash back-off: pod, container and spec hash, as
// upstream (a changed spec starts afresh).
func backOffKey(pod *v1.Pod, c *v1.Container) string {
	return fmt.Sprintf("%s_%s_%s_%s_%s", pod.Name, pod.Namespace, pod.UID, c.Name, cri.ContainerHash(c))
}

func (w *Workers) inBackOff(pod *v1.Pod) inBackOffFunc {
	return func(c *v1.Container, last *cri.Container) bool {
		key := backOffKey(pod, c)
		// After a restart of minikubelet the back-off is rebuilt from the restart count the
		// runtime keeps, so it resumes instead of starting again at zero; not for an
		// instance that ran long enough for upstream to reset the back-off.
		if w.crashBack.Get(key) == 0 && last.RestartCount > 0 && last.FinishedAt.Sub(last.StartedAt) < 2*backOffMax {
			for i := 0; i < last.RestartCount && w.crashBack.Get(key) < backOffMax; i++ {
				w.crashBack.Next(key, last.FinishedAt)
			}
		}
		return w.crashBack.IsInBackOffSince(key, last.FinishedAt)
	}
}

// pullRetryIn: how long until a pull in back-off of the container's image, or of an image
// volume it mounts, may be tried again (the soonest; 0: none).
func (w *Workers) pullRetryIn(pod *v1.Pod, c *v1.Container) time.Duration {
	soonest := w.images.RetryIn(pod, c.Image)
	for _, vm := range c.VolumeMounts {
		for _, vol := range pod.Spec.Volumes {
			if vol.Name != vm.Name || vol.Image == nil {
				continue
			}
			if d := w.images.RetryIn(pod, vol.Image.Reference); d > 0 && (soonest == 0 || d < soonest) {
				soonest = d
			}
		}
	}
	return soonest
}

// verifyNonRoot applies runAsNonRoot against the image's user (only asked of the runtime
// when runAsNonRoot is set and runAsUser is not).
func (w *Workers) verifyNonRoot(ctx context.Context, pod *v1.Pod, c *v1.Container, imageRef string) error {
	if err := cri.VerifyRunAsNonRoot(pod, c, new(int64(1)), ""); err != nil {
		return err // runAsUser 0 breaks the policy whatever the image says
	}
	zero := int64(0)
	if cri.VerifyRunAsNonRoot(pod, c, &zero, "") == nil {
		return nil // no policy, or a non-root runAsUser
	}
	img, err := w.cfg.Runtime.ImageStatus(ctx, imageRef)
	if err != nil {
		return err
	}
	var uid *int64
	if u := img.GetUid(); u != nil {
		uid = &u.Value
	} else if img.GetUsername() == "" {
		uid = &zero // an image without a user runs as root
	}
	return cri.VerifyRunAsNonRoot(pod, c, uid, img.GetUsername())
}

// startContainer pulls, creates and starts one container. On failure it returns the
// waiting reason and message upstream reports for that step.
func (w *Workers) startContainer(ctx context.Context, pod *v1.Pod, sandboxID string, s start, st *cri.PodState, pulls imageVolumePulls) (status.Waiting, error) {
	c := s.Container
	// Image volumes first, as upstream: their failure is reported before the image's pull.
	if wt, err := w.imageVolumeFailure(pod, c, pulls); err != nil {
		return wt, err
	}
	imageRef, wt, err := w.images.EnsureImage(ctx, pod, c)
	if err != nil {
		w.event(pod, c, v1.EventTypeWarning, "Failed", "Error: %s", wt.Reason)
		return wt, err
	}
	targetID, err := ephemeralTarget(s, st)
	if err != nil {
		w.event(pod, c, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return status.Waiting{Reason: "CreateContainerConfigError", Message: err.Error()}, err
	}
	if err := w.verifyNonRoot(ctx, pod, c, imageRef); err != nil {
		w.event(pod, c, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return status.Waiting{Reason: "CreateContainerConfigError", Message: err.Error()}, err
	}
	podIPs, err := w.sandboxIPs(ctx, st, sandboxID)
	if err != nil {
		return status.Waiting{Reason: "CreateContainerError", Message: err.Error()}, err
	}
	env, err := w.resolveEnvFor(ctx, pod, c, podIPs, w.cfg.HostIPs)
	if err != nil {
		w.event(pod, c, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return status.Waiting{Reason: "CreateContainerConfigError", Message: err.Error()}, err
	}
	mounts, termPath, err := w.containerMounts(pod, c, s.RestartCount, podIPs)
	if err == nil {
		var vm []*runtimeapi.Mount
		vm, err = w.volumeMounts(ctx, pod, c, env, pulls)
		mounts = append(mounts, vm...)
	}
	var devices []*runtimeapi.Device
	if err == nil {
		devices, err = w.volumeDevices(ctx, pod, c)
	}
	if err != nil {
		w.event(pod, c, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return status.Waiting{Reason: "CreateContainerConfigError", Message: err.Error()}, err
	}
	userNs, err := w.podUserns(ctx, pod)
	if err != nil {
		w.event(pod, c, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return status.Waiting{Reason: "CreateContainerConfigError", Message: err.Error()}, err
	}
	cfg, err := cri.ContainerConfig(pod, c, cri.ContainerOptions{
		NodeName: w.cfg.NodeName, RestartCount: s.RestartCount, Init: s.Init, ImageRef: imageRef, Env: env, Mounts: mounts, Devices: devices,
		SeccompDir: filepath.Join(w.cfg.RootDir, "seccomp"), TargetID: targetID, Userns: userNs,
		HugePageSizes: w.cfg.HugePageSizes, MemoryCapacity: w.cfg.MemoryCapacity})
	if err != nil {
		w.event(pod, c, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return status.Waiting{Reason: "CreateContainerConfigError", Message: err.Error()}, err
	}
	cfg.Annotations[cri.AnnotationTermMsgHostPath] = termPath
	sbOpts := w.sandboxOptions()
	sbOpts.Userns = userNs // the runtime checks the container's against it
	sbCfg, _ := cri.SandboxConfig(pod, 0, sbOpts)
	if err := os.MkdirAll(filepath.Join(sbCfg.LogDirectory, c.Name), 0o755); err != nil {
		return status.Waiting{Reason: "CreateContainerError", Message: err.Error()}, err
	}
	if s.RestartCount > 0 {
		if last, _ := st.Latest(c.Name); last != nil && last.State == cri.StateExited {
			w.crashBack.Next(backOffKey(pod, c), last.FinishedAt)
		}
	}
	id, wt, err := w.createAndStart(ctx, pod, c, sandboxID, cfg, sbCfg)
	if id != "" {
		// What the new instance runs with, for in-place resizes (upstream records it at
		// creation too).
		if aerr := w.cfg.Allocation.SetActuated(pod.UID, c.Name, c.Resources); aerr != nil {
			klog.FromContext(ctx).Error(aerr, "Recording a container's resources failed", "pod", klog.KObj(pod), "container", c.Name)
		}
	}
	if err != nil {
		return wt, err
	}
	w.linkLog(ctx, pod, c.Name, id, filepath.Join(sbCfg.LogDirectory, cfg.LogPath))
	podIP := ""
	if len(podIPs) > 0 {
		podIP = podIPs[0]
	}
	if msg, err := w.postStart(ctx, pod, c, id, podIP); err != nil {
		return status.Waiting{Reason: "PostStartHookError", Message: msg}, err
	}
	klog.FromContext(ctx).V(2).Info("Started container", "pod", klog.KObj(pod), "container", c.Name, "restartCount", s.RestartCount)
	// Keep the new instance and the newest dead one (for logs --previous).
	w.removeOldInstances(ctx, pod, st, c.Name)
	return status.Waiting{}, nil
}

// removeOldInstances removes, once a new instance of container name started, the dead
// instances container GC would (all but the newest), at once rather than within a
// minute.
func (w *Workers) removeOldInstances(ctx context.Context, pod *v1.Pod, st *cri.PodState, name string) {
	dead, _ := deadToRemove(st)
	dead = slices.DeleteFunc(dead, func(c cri.Container) bool { return c.Name != name })
	w.removeContainers(ctx, pod, dead)
}

// createAndStart creates and starts the configured container, with upstream's events and
// waiting reasons for each step that fails.
func (w *Workers) createAndStart(ctx context.Context, pod *v1.Pod, c *v1.Container, sandboxID string,
	cfg *runtimeapi.ContainerConfig, sbCfg *runtimeapi.PodSandboxConfig) (string, status.Waiting, error) {
	id, err := w.cfg.Runtime.CreateContainer(ctx, sandboxID, cfg, sbCfg)
	if err != nil {
		w.event(pod, c, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return "", status.Waiting{Reason: "CreateContainerError", Message: err.Error()}, err
	}
	w.event(pod, c, v1.EventTypeNormal, "Created", "Container created")
	if err := w.cfg.Runtime.StartContainer(ctx, id); err != nil {
		w.event(pod, c, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return id, status.Waiting{Reason: "RunContainerError", Message: err.Error()}, err
	}
	w.event(pod, c, v1.EventTypeNormal, "Started", "Container started")
	return id, status.Waiting{}, nil
}

// ephemeralTarget is the ID of the container whose process namespace an ephemeral
// container joins: the newest instance of its target, whatever its state (the runtime
// refuses one that is not running), as upstream's getTargetID.
func ephemeralTarget(s start, st *cri.PodState) (string, error) {
	if !s.Ephemeral || s.Target == "" {
		return "", nil
	}
	last, _ := st.Latest(s.Target)
	if last == nil {
		return "", fmt.Errorf("unable to find target container %s", s.Target)
	}
	return last.ID, nil
}

// containerMounts: the termination-message file (a fresh one per instance) and the
// kubelet-managed /etc/hosts (hostsFile). Volumes: volumeMounts.
func (w *Workers) containerMounts(pod *v1.Pod, c *v1.Container, restartCount int, podIPs []string) ([]*runtimeapi.Mount, string, error) {
	var mounts []*runtimeapi.Mount
	dir := filepath.Join(w.podDir(pod), "containers", c.Name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, "", err
	}
	termPath := ""
	if c.TerminationMessagePath != "" {
		termPath = filepath.Join(dir, strconv.Itoa(restartCount)+"-termination-log")
		if err := os.WriteFile(termPath, nil, 0o666); err != nil {
			return nil, "", err
		}
		// The umask cut the mode; as upstream, the file is writable by any user the
		// container runs as.
		if err := os.Chmod(termPath, 0o666); err != nil {
			return nil, "", err
		}
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: c.TerminationMessagePath, HostPath: termPath})
	}
	// As upstream: no hosts file before a pod-network pod has an address.
	if (len(podIPs) > 0 || pod.Spec.HostNetwork) && !hasMountAt(c, "/etc/hosts") {
		content, err := w.hostsFile(pod, podIPs)
		if err != nil {
			return nil, "", err
		}
		hosts := filepath.Join(w.podDir(pod), "etc-hosts")
		if err := os.WriteFile(hosts, content, 0o644); err != nil {
			return nil, "", err
		}
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: "/etc/hosts", HostPath: hosts})
	}
	return mounts, termPath, nil
}

// sandboxIPs are the pod's IPs: from the observed state when it holds the sandbox (it
// does after this sync created it), else from the runtime.
func (w *Workers) sandboxIPs(ctx context.Context, st *cri.PodState, sandboxID string) ([]string, error) {
	if sb := st.ReadySandbox(); sb != nil && sb.ID == sandboxID {
		return sb.IPs, nil
	}
	ss, err := w.cfg.Runtime.SandboxStatus(ctx, sandboxID)
	if err != nil {
		return nil, err
	}
	return cri.NewSandbox(ss).IPs, nil
}
