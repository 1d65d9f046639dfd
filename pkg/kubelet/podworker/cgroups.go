package podworker

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// PodCgroups makes pod cgroups and updates the QoS cgroups (package cm).
type PodCgroups interface {
	EnsurePod(pod *v1.Pod) error
	// RemovePod removes the pod's cgroup (its containers are gone) and updates the QoS
	// cgroups without it.
	RemovePod(pod *v1.Pod) error
	UpdateQOS() error
	// ResizePod sets resource name (cpu or memory) of the pod's cgroup to the pod's
	// values (an in-place resize).
	ResizePod(pod *v1.Pod, name v1.ResourceName) error
	// PodLimit is the pod cgroup's limit of name for pod (-1: none).
	PodLimit(pod *v1.Pod, name v1.ResourceName) int64
}

// ensurePodCgroup makes the pod's cgroup before its sandbox, as upstream's SyncPod does,
// with upstream's event when that fails.
func (w *Workers) ensurePodCgroup(pod *v1.Pod) error {
	if !w.cfg.CgroupsPerQOS || w.cfg.Cgroups == nil {
		return nil
	}
	if err := w.cfg.Cgroups.EnsurePod(pod); err != nil {
		w.event(pod, nil, v1.EventTypeWarning, "FailedCreatePodContainer", "unable to ensure pod container exists: %v", err)
		return err
	}
	return nil
}

// ActivePods are the pods whose containers may run: not finished (Succeeded or Failed).
func (w *Workers) ActivePods() []*v1.Pod {
	pods := w.Pods()
	out := pods[:0:0]
	for _, p := range pods {
		if p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
			out = append(out, p)
		}
	}
	return out
}

// removePodCgroups releases the pod's cgroup once its containers are gone (the cgroup
// manager removes its directories, or stops its systemd slice) and updates the QoS
// cgroups. Failures are logged: the cgroup manager's orphan sweep tries again.
func (w *Workers) removePodCgroups(ctx context.Context, pod *v1.Pod) {
	if !w.cfg.CgroupsPerQOS || w.cfg.Cgroups == nil {
		return
	}
	if err := w.cfg.Cgroups.RemovePod(pod); err != nil {
		klog.FromContext(ctx).Info("Removing the pod's cgroup failed", "pod", klog.KObj(pod), "err", err)
	}
}
