package podworker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/kubelet/allocation"
	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
)

// In-place pod resize, as upstream v1.37 (InPlacePodVerticalScaling GA): a running pod's
// new resources are allocated if they fit beside the other pods' allocations (else the
// resize is Deferred and tried again on later syncs), then applied to the pod cgroup and,
// through CRI UpdateContainerResources, to its running containers; the decision of what
// to resize or restart is computeActions' (resizeOf).

// allocate puts the pod's allocation in place of its spec's resources for this sync,
// first allocating a resize that fits (upstream's allocation manager), and records what
// running containers were given when nothing is known of them yet.
func (w *Workers) allocate(ctx context.Context, p *pass) {
	am := w.cfg.Allocation
	if p.removed || p.deleting || p.finished {
		p.pod, _ = am.Allocated(p.pod)
		return
	}
	am.Restore(p.pod)
	w.allocateResize(ctx, p)
	w.initActuated(ctx, p)
}

// allocateResize records a new pod's allocation, or allocates its resize if it fits (else
// reports it Deferred), leaving p.pod the pod as allocated.
func (w *Workers) allocateResize(ctx context.Context, p *pass) {
	am := w.cfg.Allocation
	pod := p.pod
	if !am.Has(pod.UID) {
		w.logAllocErr(ctx, pod, am.Allocate(pod))
		return
	}
	allocated, resized := am.Allocated(pod)
	if !resized {
		am.ClearPending(pod.UID)
		return
	}
	w.resizeMu.Lock()
	defer w.resizeMu.Unlock()
	var fails []failure
	if node, err := w.admissionNode(); err != nil {
		fails = []failure{{reasonInvalidNode, "Kubelet cannot get node info."}}
	} else {
		fails = w.fitResources(pod, node, w.activeAdmitted(pod.UID))
	}
	if len(fails) > 0 {
		f := fails[0]
		if am.SetPending(pod.UID, f.reason, f.message, pod.Generation) {
			reason := "ResizeDeferred"
			if f.reason == v1.PodReasonInfeasible {
				reason = "ResizeInfeasible"
			}
			w.event(pod, nil, v1.EventTypeWarning, reason, "%s", resizeMessage("Pod resize "+f.reason, pod, pod.Generation, f.message))
		}
		p.pod = allocated
		return
	}
	if err := am.Allocate(pod); err != nil {
		w.logAllocErr(ctx, pod, err)
		p.pod = allocated
		return
	}
	am.ClearPending(pod.UID)
	am.ClearInProgress(pod.UID)
	am.SetInProgress(pod.UID, "", "", pod.Generation)
	w.event(pod, nil, v1.EventTypeNormal, "ResizeStarted", "%s", resizeMessage("Pod resize started", pod, pod.Generation, ""))
}

func (w *Workers) logAllocErr(ctx context.Context, pod *v1.Pod, err error) {
	if err != nil {
		klog.FromContext(ctx).Error(err, "Recording the pod's allocation failed", "pod", klog.KObj(pod))
	}
}

// initActuated records, for running resizable containers nothing is known of (started
// before the record existed), that they run with the allocation (upstream's
// InitializeActuatedPod).
func (w *Workers) initActuated(ctx context.Context, p *pass) {
	am := w.cfg.Allocation
	for _, c := range allocation.ResizableContainers(p.pod) {
		if last, _ := p.state.Latest(c.Name); last == nil || last.State != cri.StateRunning {
			continue
		}
		if _, ok := am.Actuated(p.pod.UID, c.Name); !ok {
			w.logAllocErr(ctx, p.pod, am.SetActuated(p.pod.UID, c.Name, c.Resources))
		}
	}
}

func (w *Workers) actuated(pod *v1.Pod) actuatedFunc {
	return func(name string) (v1.ResourceRequirements, bool) { return w.cfg.Allocation.Actuated(pod.UID, name) }
}

// resizeInProgress: a running resizable container does not (yet) run with its allocated
// CPU and memory (upstream's IsPodResizeInProgress).
func (w *Workers) resizeInProgress(pod *v1.Pod, st *cri.PodState) bool {
	for _, c := range allocation.ResizableContainers(pod) {
		last, _ := st.Latest(c.Name)
		if last == nil || last.State != cri.StateRunning {
			continue
		}
		if r, restart := resizeOf(c, last, w.actuated(pod)); r != nil || restart {
			return true
		}
	}
	return false
}

// trackResize sets PodResizeInProgress while the pod's containers do not run with their
// allocation, and clears it, with upstream's ResizeCompleted event, once they do.
func (w *Workers) trackResize(p *pass) {
	am, pod := w.cfg.Allocation, p.pod
	if p.removed || p.deleting || p.finished {
		return
	}
	if w.resizeInProgress(pod, p.state) {
		am.SetInProgress(pod.UID, "", "", pod.Generation)
	} else if gen, cleared := am.ClearInProgress(pod.UID); cleared {
		w.event(pod, nil, v1.EventTypeNormal, "ResizeCompleted", "%s", resizeMessage("Pod resize completed", pod, gen, ""))
	}
}

// doResize applies the decided in-place resizes: memory, then CPU; for each, the pod
// cgroup first when its limit grows, the containers (shrinking ones first), the pod
// cgroup last when its limit shrinks, so a container's limit never exceeds its pod's.
// A failure stops there (later syncs retry) and is reported as upstream: the
// PodResizeInProgress condition with reason Error and a ResizeError event.
func (w *Workers) doResize(ctx context.Context, p *pass) {
	if len(p.acts.Resize) == 0 {
		return
	}
	pod := p.pod
	current := pod.DeepCopy()
	for _, r := range p.acts.Resize {
		setContainerResources(current, r.Container.Name, r.Current)
	}
	err := w.checkMemoryDecrease(ctx, pod, current, p.acts.Resize)
	if err == nil {
		err = w.resizeResource(ctx, pod, current, v1.ResourceMemory, p.acts.Resize)
	}
	if err == nil {
		err = w.resizeResource(ctx, pod, current, v1.ResourceCPU, p.acts.Resize)
	}
	if err != nil {
		klog.FromContext(ctx).Error(err, "Resizing the pod failed", "pod", klog.KObj(pod))
		if gen, changed := w.cfg.Allocation.SetInProgress(pod.UID, v1.PodReasonError, err.Error(), pod.Generation); changed {
			w.event(pod, nil, v1.EventTypeWarning, "ResizeError", "%s", resizeMessage("Pod resize error", pod, gen, err.Error()))
		}
	}
	// Look again soon: the condition clears (or the error is retried) on the next sync.
	p.requeueIn(resizeRecheck)
}

// checkMemoryDecrease refuses, before anything changes, memory limits set or lowered
// below what the containers (or the pod) use now, as upstream's validateMemoryResizeAction
// with its wording (which names the pod's usage for a container too).
func (w *Workers) checkMemoryDecrease(ctx context.Context, pod, current *v1.Pod, rs []resize) error {
	lowered := map[string]int64{}
	for _, r := range rs {
		want, have := r.Desired.Limits.Memory().Value(), r.Current.Limits.Memory().Value()
		if want != 0 && (have == 0 || want < have) {
			lowered[r.Container.Name] = want
		}
	}
	podWant, podHave := int64(-1), int64(-1)
	if w.cfg.CgroupsPerQOS && w.cfg.Cgroups != nil {
		podWant, podHave = w.cfg.Cgroups.PodLimit(pod, v1.ResourceMemory), w.cfg.Cgroups.PodLimit(current, v1.ResourceMemory)
	}
	podLowered := podWant >= 0 && (podHave < 0 || podWant < podHave)
	if len(lowered) == 0 && !podLowered {
		return nil
	}
	ids := map[string]string{}
	for _, r := range rs {
		ids[r.ID] = r.Container.Name
	}
	stats, err := w.cfg.Runtime.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{LabelSelector: map[string]string{cri.LabelPodUID: string(pod.UID)}})
	if err != nil {
		return fmt.Errorf("unable to read memory usage for pod %q", klog.KObj(pod))
	}
	var podUsage uint64
	usage := map[string]uint64{}
	for _, s := range stats {
		if s.GetAttributes().GetLabels()[cri.LabelPodUID] != string(pod.UID) {
			continue
		}
		u := s.GetMemory().GetUsageBytes().GetValue()
		podUsage += u
		if name, ok := ids[s.GetAttributes().GetId()]; ok {
			usage[name] = u
		}
	}
	var errs []error
	if podLowered && podUsage >= uint64(podWant) {
		errs = append(errs, fmt.Errorf("attempting to set pod memory limit (%d) below current usage (%d)", podWant, podUsage))
	}
	for _, r := range rs {
		if want, ok := lowered[r.Container.Name]; ok && usage[r.Container.Name] >= uint64(want) {
			errs = append(errs, fmt.Errorf("attempting to set container %q memory limit (%d) below current usage (%d)", r.Container.Name, want, podUsage))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cannot decrease memory limits: %w", utilerrors.NewAggregate(errs))
	}
	return nil
}

// resizeRecheck is how soon a pod is synced again after a resize.
const resizeRecheck = 100 * time.Millisecond

// resizeResource moves resource name of the resizing containers (and the pod cgroup)
// from current's values to pod's.
func (w *Workers) resizeResource(ctx context.Context, pod, current *v1.Pod, name v1.ResourceName, rs []resize) error {
	var shrink, grow []resize
	for _, r := range rs {
		d, c := limitOrRequest(r.Desired, name), limitOrRequest(r.Current, name)
		switch d.Cmp(c) {
		case -1:
			shrink = append(shrink, r)
		case 1:
			grow = append(grow, r)
		default:
			if !sameResource(r.Desired, r.Current, name) {
				grow = append(grow, r) // a request change alone
			}
		}
	}
	if len(shrink)+len(grow) == 0 {
		return nil
	}
	podGrows := w.podLimitGrows(pod, current, name)
	if podGrows {
		if err := w.setPodCgroup(pod, name); err != nil {
			return err
		}
	}
	for _, r := range append(shrink, grow...) {
		next := *currentOf(current, r.Container.Name).DeepCopy()
		for _, l := range []*v1.ResourceList{&next.Requests, &next.Limits} {
			if *l == nil {
				*l = v1.ResourceList{}
			}
		}
		setOrDelete(next.Requests, r.Desired.Requests, name)
		setOrDelete(next.Limits, r.Desired.Limits, name)
		c := r.Container.DeepCopy()
		c.Resources = next
		res := cri.ContainerResources(pod, c, cri.ContainerOptions{HugePageSizes: w.cfg.HugePageSizes, MemoryCapacity: w.cfg.MemoryCapacity})
		if err := w.cfg.Runtime.UpdateContainerResources(ctx, r.ID, res); err != nil {
			return fmt.Errorf("failed to update %s of container %q: %w", name, c.Name, err)
		}
		setContainerResources(current, c.Name, next)
		if err := w.cfg.Allocation.SetActuated(pod.UID, c.Name, next); err != nil {
			return err
		}
	}
	if !podGrows {
		return w.setPodCgroup(pod, name)
	}
	return nil
}

// podLimitGrows: the pod cgroup's limit of name grows from current's to pod's (an added
// limit grows too: unlimited is never set before the containers).
func (w *Workers) podLimitGrows(pod, current *v1.Pod, name v1.ResourceName) bool {
	if !w.cfg.CgroupsPerQOS || w.cfg.Cgroups == nil {
		return false
	}
	want, have := w.cfg.Cgroups.PodLimit(pod, name), w.cfg.Cgroups.PodLimit(current, name)
	return want < 0 || have >= 0 && want > have
}

func (w *Workers) setPodCgroup(pod *v1.Pod, name v1.ResourceName) error {
	if !w.cfg.CgroupsPerQOS || w.cfg.Cgroups == nil {
		return nil
	}
	return w.cfg.Cgroups.ResizePod(pod, name)
}

func limitOrRequest(r v1.ResourceRequirements, name v1.ResourceName) resource.Quantity {
	if q, ok := r.Limits[name]; ok {
		return q
	}
	return r.Requests[name]
}

func sameResource(a, b v1.ResourceRequirements, name v1.ResourceName) bool {
	ar, br := a.Requests[name], b.Requests[name]
	al, bl := a.Limits[name], b.Limits[name]
	return ar.Cmp(br) == 0 && al.Cmp(bl) == 0
}

func setOrDelete(dst, src v1.ResourceList, name v1.ResourceName) {
	if q, ok := src[name]; ok {
		dst[name] = q.DeepCopy()
	} else {
		delete(dst, name)
	}
}

func currentOf(pod *v1.Pod, name string) *v1.ResourceRequirements {
	if c := containerByName(pod, name); c != nil {
		return &c.Resources
	}
	return &v1.ResourceRequirements{}
}

func setContainerResources(pod *v1.Pod, name string, r v1.ResourceRequirements) {
	if c := containerByName(pod, name); c != nil {
		c.Resources = *r.DeepCopy()
	}
}

// resizeMessage is upstream's resize event message: a prefix, then the pod's containers'
// resources, the generation and any error, as JSON.
func resizeMessage(prefix string, pod *v1.Pod, generation int64, errMsg string) string {
	type alloc struct {
		Name      string                  `json:"name"`
		Resources v1.ResourceRequirements `json:"resources,omitempty"`
	}
	summary := struct {
		InitContainers []alloc `json:"initContainers,omitempty"`
		Containers     []alloc `json:"containers,omitempty"`
		Generation     int64   `json:"generation"`
		Error          string  `json:"error,omitempty"`
	}{Generation: generation, Error: errMsg}
	for _, c := range pod.Spec.InitContainers {
		summary.InitContainers = append(summary.InitContainers, alloc{c.Name, c.Resources})
	}
	for _, c := range pod.Spec.Containers {
		summary.Containers = append(summary.Containers, alloc{c.Name, c.Resources})
	}
	b, err := json.Marshal(summary)
	if err != nil {
		return prefix
	}
	return prefix + ": " + string(b)
}

// actuatedResources are the running containers' resources as recorded, by container ID,
// for the status (what a runtime reporting resources would say).
func (w *Workers) actuatedResources(pod *v1.Pod, st *cri.PodState) map[string]*status.ContainerResources {
	out := map[string]*status.ContainerResources{}
	for _, c := range allocation.ResizableContainers(pod) {
		last, _ := st.Latest(c.Name)
		if last == nil || last.State != cri.StateRunning {
			continue
		}
		a, ok := w.cfg.Allocation.Actuated(pod.UID, c.Name)
		if !ok {
			continue
		}
		q := func(l v1.ResourceList, n v1.ResourceName) *resource.Quantity {
			if v, ok := l[n]; ok {
				return &v
			}
			return nil
		}
		out[last.ID] = &status.ContainerResources{CPURequest: q(a.Requests, v1.ResourceCPU), CPULimit: q(a.Limits, v1.ResourceCPU),
			MemoryRequest: q(a.Requests, v1.ResourceMemory), MemoryLimit: q(a.Limits, v1.ResourceMemory)}
	}
	return out
}

// wakeDeferred makes pods with a deferred resize look again: room may have appeared (a
// pod left or finished), as upstream retries its pending resizes then.
func (w *Workers) wakeDeferred() {
	w.mu.Lock()
	wks := make([]*worker, 0, len(w.pods))
	for _, wk := range w.pods {
		wks = append(wks, wk)
	}
	w.mu.Unlock()
	for _, wk := range wks {
		if reason, ok := w.cfg.Allocation.Pending(wk.uid); ok && reason == v1.PodReasonDeferred {
			wk.kick()
		}
	}
}
