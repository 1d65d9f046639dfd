package podworker

import (
	"context"
	"os"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// containerGCPeriod is how often a pod's dead containers and sandboxes are collected
// (upstream's ContainerGCPeriod).
const containerGCPeriod = time.Minute

// deadToRemove is what container garbage collection removes of a pod that still exists,
// as upstream's container GC with its default policy (MinAge 0, MaxPerPodContainer 1,
// MaxContainers -1): of each container, every instance that is not running except the
// newest of them (kept for `kubectl logs --previous` and the last termination state);
// then every sandbox that is not ready, not the pod's newest, and holds none of the
// containers left. Instances in an unknown state are left alone (upstream kills them
// first). st lists sandboxes and containers newest first.
func deadToRemove(st *cri.PodState) (containers []cri.Container, sandboxes []cri.Sandbox) {
	keptDead := map[string]bool{}
	inSandbox := map[string]bool{}
	for _, c := range st.Containers {
		switch {
		case c.MayRun():
			inSandbox[c.SandboxID] = true
		case !keptDead[c.Name]:
			keptDead[c.Name] = true
			inSandbox[c.SandboxID] = true
		default:
			containers = append(containers, c)
		}
	}
	for i, sb := range st.Sandboxes {
		if i > 0 && !sb.Ready && !inSandbox[sb.ID] {
			sandboxes = append(sandboxes, sb)
		}
	}
	return containers, sandboxes
}

// collectDead removes a pod's dead containers and sandboxes as deadToRemove decides, at
// most every containerGCPeriod; the pod's worker runs it, so it never races the pod's
// own actions.
func (w *Workers) collectDead(ctx context.Context, wk *worker, pod *v1.Pod, st *cri.PodState) {
	wk.mu.Lock()
	now := wk.collectNow
	wk.collectNow = false
	wk.mu.Unlock()
	if !now && time.Since(wk.collected) < containerGCPeriod {
		return
	}
	wk.collected = time.Now()
	containers, sandboxes := deadToRemove(st)
	w.removeContainers(ctx, pod, containers)
	logger := klog.FromContext(ctx)
	for _, sb := range sandboxes {
		logger.V(4).Info("Removing sandbox", "pod", klog.KObj(pod), "sandboxID", sb.ID)
		// As upstream: stopped first, in case it was not.
		if err := w.cfg.Runtime.StopSandbox(ctx, sb.ID); err != nil {
			logger.Error(err, "Failed to stop sandbox before removing", "sandboxID", sb.ID)
			continue
		}
		if err := w.cfg.Runtime.RemoveSandbox(ctx, sb.ID); err != nil {
			logger.Error(err, "Failed to remove sandbox", "sandboxID", sb.ID)
		}
	}
}

// DeleteUnusedContainers has every pod's worker collect its dead containers and
// sandboxes at once (the eviction manager reclaiming disk). The workers do it in their
// next sync, so a collection never races a pod's own actions; it does not wait for them.
func (w *Workers) DeleteUnusedContainers(context.Context) error {
	w.mu.Lock()
	wks := make([]*worker, 0, len(w.pods))
	for _, wk := range w.pods {
		wks = append(wks, wk)
	}
	w.mu.Unlock()
	for _, wk := range wks {
		wk.mu.Lock()
		wk.collectNow = true
		wk.mu.Unlock()
		wk.kick()
	}
	return nil
}

// removeContainers removes containers and their log symlinks; a failure is logged (the
// next collection tries again).
func (w *Workers) removeContainers(ctx context.Context, pod *v1.Pod, containers []cri.Container) {
	for _, ct := range containers {
		if err := w.cfg.Runtime.RemoveContainer(ctx, ct.ID); err != nil {
			klog.FromContext(ctx).Error(err, "Failed to remove container", "pod", klog.KObj(pod), "containerID", ct.ID)
			continue
		}
		w.unlinkLog(ctx, pod, &ct)
	}
}

// removePodLogs removes the log folder of a pod gone from the node, as upstream's
// container GC does for pods whose content should be removed.
func (w *Workers) removePodLogs(ctx context.Context, pod *v1.Pod) {
	if err := os.RemoveAll(cri.PodLogDir(w.cfg.PodLogsDir, pod)); err != nil {
		klog.FromContext(ctx).Error(err, "Failed to remove pod logs directory", "pod", klog.KObj(pod))
	}
}
