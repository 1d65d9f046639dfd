package podworker

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/kubelet/logs"
)

// linkLog makes the container's /var/log/containers symlink once it has started, as
// upstream does; a failure is logged, never fatal to the container.
func (w *Workers) linkLog(ctx context.Context, pod *v1.Pod, container, id, logFile string) {
	if w.cfg.ContainerLogsDir == "" {
		return
	}
	if err := logs.Link(w.cfg.ContainerLogsDir, pod.Name, pod.Namespace, container, id, logFile); err != nil {
		klog.FromContext(ctx).Error(err, "Failed to create legacy symbolic link", "pod", klog.KObj(pod), "containerID", id, "containerLogPath", logFile)
	}
}

// unlinkLog removes a removed container's symlink.
func (w *Workers) unlinkLog(ctx context.Context, pod *v1.Pod, ct *cri.Container) {
	if w.cfg.ContainerLogsDir == "" {
		return
	}
	if err := logs.Unlink(w.cfg.ContainerLogsDir, pod.Name, pod.Namespace, ct.Name, ct.ID); err != nil {
		klog.FromContext(ctx).Error(err, "Failed to remove container log symbolic link", "pod", klog.KObj(pod), "containerID", ct.ID)
	}
}
