package podworker

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
	"github.com/minikubelet/minikubelet/pkg/probe"
	"github.com/minikubelet/minikubelet/pkg/volume"
)

// minGracePeriod is the shortest kill window the upstream kubelet gives a container.
const minGracePeriod = 2

// pass is one sync of a pod: what was observed, what was decided, and what acting left
// to report.
type pass struct {
	pod                                   *v1.Pod
	removed, deleting, finished, deadline bool
	// evict is the eviction manager's order, while the pod has not finished.
	evict   *eviction
	state   *cri.PodState
	acts    actions
	acting  bool
	waiting map[string]status.Waiting
	requeue time.Duration
}

// sync runs one reconcile of a pod: observe, decide (the pure computeActions), act,
// report. It returns when to sync again (0: the resync period) and whether the worker is
// finished (the pod is gone).
func (w *Workers) sync(ctx context.Context, wk *worker) (time.Duration, bool) {
	ctx, span := w.startSyncSpan(ctx, wk)
	defer span.End()
	p, err := w.observe(ctx, wk)
	if err != nil {
		klog.FromContext(ctx).Error(err, "Reading runtime state failed", "pod", klog.KObj(p.pod))
		return time.Second, false
	}
	if done, next := w.admission(ctx, wk, p.pod, p.state, p.removed); done || next >= 0 {
		return max(next, 0), done
	}
	w.allocate(ctx, p)
	if !p.stopping() {
		// Labels and annotations change while the pod runs; its downward API files follow.
		w.cfg.Volumes.Update(ctx, p.pod)
	}
	if next, held := w.networkGate(ctx, wk, p); held {
		return next, false
	}
	// Containers that failed liveness or startup probes are killed first; the decision
	// then restarts them per restartPolicy.
	if w.killUnhealthy(ctx, p.pod, p.state) {
		w.reobserve(ctx, p)
	}
	w.trackResize(p)
	p.acts = computeActions(p.pod, p.state, p.stopping(), w.inBackOff(p.pod),
		func(c *v1.Container, id string) bool { return w.cfg.Probes.Started(p.pod.UID, c, id) }, w.actuated(p.pod))
	p.acting = len(p.acts.Start) > 0 || p.acts.KillPod || len(p.acts.Kill) > 0 || p.acts.CreateSandbox
	if next, ok := w.act(ctx, wk, p); !ok {
		return next, false
	}
	if p.evict != nil {
		p.evict.finish() // act's killPod returns once the containers stopped
	}
	next, done := w.report(ctx, wk, p)
	if !done && !p.deleting {
		w.collectDead(ctx, wk, p.pod, p.state)
	}
	return next, done
}

// observe reads the pod's newest spec, its newest status, and its runtime state.
func (w *Workers) observe(ctx context.Context, wk *worker) (*pass, error) {
	wk.mu.Lock()
	pod, removed := wk.pod.DeepCopy(), wk.removed
	wk.mu.Unlock()
	// The newest status we computed is fresher than the informer's copy, except for the
	// conditions other writers own (readiness gates ...), which only the API has.
	if st, ok := w.cfg.Status.Status(pod.UID); ok {
		st.Conditions = status.WithForeignConditions(st.Conditions, pod.Status.Conditions)
		pod.Status = st
		if st.Phase == v1.PodSucceeded || st.Phase == v1.PodFailed {
			// Upstream's pod worker takes no updates once the pod finished: its status
			// keeps observing the generation it had then (a later spec change or the
			// deletion's generation bump is not observed).
			pod.Generation = st.ObservedGeneration
		}
	}
	p := &pass{pod: pod, removed: removed, deleting: pod.DeletionTimestamp != nil,
		finished: pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed, waiting: map[string]status.Waiting{}}
	p.deadline = !p.finished && deadlineExceeded(pod, time.Now())
	if !p.finished {
		wk.mu.Lock()
		p.evict = wk.evict
		wk.mu.Unlock()
	}
	var err error
	p.state, err = w.cfg.State.Get(ctx, pod.UID)
	return p, err
}

// stopping: the pod's containers are to stop for good (removed, deleted, finished, past
// its deadline, evicted).
func (p *pass) stopping() bool {
	return p.removed || p.deleting || p.finished || p.deadline || p.evict != nil
}

// reobserve reads the runtime state again after acting on it (the cache reads our own
// writes); on an error the previous state stands.
func (w *Workers) reobserve(ctx context.Context, p *pass) {
	if s, err := w.cfg.State.Get(ctx, p.pod.UID); err == nil {
		p.state = s
	}
}

// act carries out the decision. It returns false (and when to try again) when the pod's
// volumes or sandbox could not be made, having reported it as still creating.
func (w *Workers) act(ctx context.Context, wk *worker, p *pass) (time.Duration, bool) {
	logger := klog.FromContext(ctx)
	pod, acts := p.pod, p.acts
	if p.acting && !p.removed {
		// As upstream: first report what was observed (an exit, a missing sandbox), then act.
		w.cfg.Status.SetStatus(pod, w.podStatus(pod, p.state, w.stillWaiting(wk, p.state), p.deadline, acts.PodFailed, p.evict))
	}
	if acts.KillPod {
		grace := gracePeriod(pod)
		switch {
		case p.evict != nil:
			grace = p.evict.grace
		case p.deadline:
			w.event(pod, nil, v1.EventTypeNormal, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
		}
		w.killPod(ctx, pod, p.state, grace)
	}
	for _, k := range acts.Kill {
		spec := containerByName(pod, k.Container.Name)
		w.event(pod, spec, v1.EventTypeNormal, "Killing", "%s", k.Message)
		w.stopContainer(ctx, pod, spec, k.Container.Name, k.Container.ID, gracePeriod(pod), "")
	}
	var sandboxID string
	if sb := p.state.ReadySandbox(); sb != nil && !acts.KillPod {
		sandboxID = sb.ID
	}
	creating := !p.removed && !p.deleting
	if (acts.CreateSandbox || len(acts.Start) > 0) && creating {
		// Volumes first, as upstream: no sandbox until every volume is ready.
		if _, err := w.cfg.Volumes.SetUp(ctx, pod, nil); err != nil {
			logger.V(2).Info("Volumes not ready", "pod", klog.KObj(pod), "err", err)
			if !volume.IsWaiting(err) { // as upstream, no event while waiting for an attachment
				w.event(pod, nil, v1.EventTypeWarning, volume.EventReason(err), "%v", err)
			}
			return w.stillCreating(wk, pod, p.state, p.deadline), false
		}
	}
	if acts.CreateSandbox && creating {
		if err := w.ensurePodCgroup(pod); err != nil {
			logger.Error(err, "Creating the pod cgroup failed", "pod", klog.KObj(pod))
			return w.stillCreating(wk, pod, p.state, p.deadline), false
		}
		id, err := w.createSandbox(ctx, pod, acts.SandboxAttempt)
		if err != nil {
			logger.Error(err, "Creating pod sandbox failed", "pod", klog.KObj(pod))
			w.event(pod, nil, v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
			return w.stillCreating(wk, pod, p.state, p.deadline), false
		}
		sandboxID = id
		w.reobserve(ctx, p) // the new sandbox (and its IPs) for the containers' environment
	}
	if sandboxID != "" {
		w.doResize(ctx, p)
		w.startAll(ctx, p, sandboxID)
	}
	w.backOff(p)
	w.setWaiting(wk, p.waiting)
	return 0, true
}

// stillWaiting keeps the waiting reasons of the last sync for containers still not running.
func (w *Workers) stillWaiting(wk *worker, state *cri.PodState) map[string]status.Waiting {
	wk.mu.Lock()
	prev := wk.waiting
	wk.mu.Unlock()
	out := map[string]status.Waiting{}
	for name, wt := range prev {
		if last, _ := state.Latest(name); last == nil || last.State != cri.StateRunning {
			out[name] = wt
		}
	}
	return out
}

// startAll starts the decided containers in the sandbox, noting why any did not start.
func (w *Workers) startAll(ctx context.Context, p *pass, sandboxID string) {
	pulls := w.pullImageVolumes(ctx, p)
	for _, s := range p.acts.Start {
		wt, err := w.startContainer(ctx, p.pod, sandboxID, s, p.state, pulls)
		if err == nil {
			continue
		}
		p.waiting[s.Container.Name] = wt
		klog.FromContext(ctx).V(2).Info("Container did not start", "pod", klog.KObj(p.pod), "container", s.Container.Name, "reason", wt.Reason, "err", err)
		if d := w.pullRetryIn(p.pod, s.Container); d > 0 {
			p.requeueIn(d)
		}
	}
}

// backOff reports the containers held in crash back-off, as upstream, and when to look again.
func (w *Workers) backOff(p *pass) {
	pod := p.pod
	for _, c := range p.acts.BackOff {
		last, _ := p.state.Latest(c.Name)
		d := w.crashBack.Get(backOffKey(pod, c))
		p.waiting[c.Name] = status.Waiting{Reason: "CrashLoopBackOff",
			Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", d, c.Name, podDesc(pod))}
		w.event(pod, c, v1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s", c.Name, podDesc(pod))
		if left := time.Until(last.FinishedAt.Add(d)); left > 0 {
			p.requeueIn(left + 10*time.Millisecond)
		}
	}
}

// requeueIn asks for the next sync no later than d from now.
func (p *pass) requeueIn(d time.Duration) {
	if p.requeue == 0 || d < p.requeue {
		p.requeue = d
	}
}

// report derives the status from what is now in the runtime (not what was asked for),
// points the probes at it, and finishes removed or terminated pods.
func (w *Workers) report(ctx context.Context, wk *worker, p *pass) (time.Duration, bool) {
	pod := p.pod
	if p.acting {
		w.reobserve(ctx, p)
	}
	st := w.podStatus(pod, p.state, p.waiting, p.deadline, p.acts.PodFailed, p.evict)
	w.syncProbes(pod, p.state, p.stopping())
	if p.removed {
		w.forget(ctx, pod, p.state)
		return 0, true
	}
	w.cfg.Status.SetStatus(pod, st)
	if p.deleting && !p.state.AnyRunning() {
		if wk.goneFromAPI() {
			// The API server removed the pod meanwhile (a deletion with grace 0 does so at
			// once): nothing to write or delete; the next sync forgets it.
			return 0, false
		}
		return w.finishDeleted(ctx, wk, p)
	}
	if p.finished && !p.state.AnyRunning() && p.state.ReadySandbox() == nil {
		w.release(ctx, wk, pod)
	}
	if p.deadline || p.evict != nil || p.acts.PodFailed {
		return 0, false
	}
	if d := activeDeadlineIn(pod, time.Now()); d > 0 {
		p.requeueIn(d)
	}
	return p.requeue, false
}

// finishDeleted ends a deleted pod whose containers have stopped, in upstream's order
// (syncTerminatingPod, syncTerminatedPod, then the status manager's delete): its sandbox
// stopped, its final status written, its volumes torn down and its cgroup removed, and
// then the object deleted. The stopped sandbox is removed once the pod is gone (forget),
// as upstream removes it after the fact: the runtime's removal stays off the path of a
// deletion the user waits for.
func (w *Workers) finishDeleted(ctx context.Context, wk *worker, p *pass) (time.Duration, bool) {
	logger := klog.FromContext(ctx)
	pod := p.pod
	if sb := p.state.ReadySandbox(); sb != nil {
		// Not stopped by this pass's kill: stop it, and report again from what is left.
		if err := w.cfg.Runtime.StopSandbox(ctx, sb.ID); err != nil {
			logger.Error(err, "Stopping sandbox failed", "pod", klog.KObj(pod))
			return time.Second, false
		}
		wk.kick()
		return 0, false
	}
	if err := w.cfg.Status.Flush(ctx, pod.UID); err != nil {
		logger.Error(err, "Writing final status failed", "pod", klog.KObj(pod))
	}
	if !w.release(ctx, wk, pod) {
		return time.Second, false // the object stays until the volumes are unmounted, as upstream's
	}
	w.wakeDeferred() // a terminated pod's allocation no longer counts
	uid := pod.UID
	err := w.cfg.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		logger.Error(err, "Deleting terminated pod failed", "pod", klog.KObj(pod))
		return time.Second, false
	}
	return 0, false // the informer's delete ends the worker
}

// release frees what a finished pod holds, once its containers and sandbox stopped, as
// upstream's syncTerminatedPod: its volumes are torn down (an evicted pod's emptyDir
// frees its disk), then its cgroup is removed. The pod's directory stays until the pod
// is gone from the API. A failed tear-down is tried again in the next sync (false); a
// cgroup that could not be removed is left to the orphan sweep.
func (w *Workers) release(ctx context.Context, wk *worker, pod *v1.Pod) bool {
	wk.mu.Lock()
	done := wk.released
	wk.mu.Unlock()
	if done {
		return true
	}
	if err := w.cfg.Volumes.TearDown(ctx, pod.UID); err != nil {
		klog.FromContext(ctx).Error(err, "Tearing down volumes of a finished pod failed", "pod", klog.KObj(pod))
		return false
	}
	w.removePodCgroups(ctx, pod)
	wk.mu.Lock()
	wk.released = true
	wk.mu.Unlock()
	return true
}

// forget releases everything of a pod gone from the API: sandboxes, cgroups, status,
// back-off, volumes and its directory.
func (w *Workers) forget(ctx context.Context, pod *v1.Pod, state *cri.PodState) {
	w.removeSandboxes(ctx, pod, state)
	w.removePodLogs(ctx, pod)
	w.cfg.Status.Forget(pod.UID)
	w.crashBack.Reset(string(pod.UID))
	w.cfg.Userns.Release(ctx, pod.UID)
	w.cfg.Allocation.Remove(pod.UID)
	w.wakeDeferred() // its allocation is free
	// Unmount before removing: RemoveAll must never walk into a live mount. The cgroup
	// goes after the volumes, as upstream's (memory-backed volumes are charged to it); if
	// they stay, the orphan sweep removes it once they are gone.
	if err := w.cfg.Volumes.TearDown(ctx, pod.UID); err != nil {
		klog.FromContext(ctx).Error(err, "Tearing down volumes failed", "pod", klog.KObj(pod))
		return
	}
	_ = os.RemoveAll(w.podDir(pod))
	w.removePodCgroups(ctx, pod)
}

// admission admits a pod the first time its worker sees it, unless it is already running
// or finished. A rejected pod is failed with upstream's reason and "Pod was rejected: "
// message and never runs; its later syncs only follow its deletion. next < 0 means the
// sync goes on.
func (w *Workers) admission(ctx context.Context, wk *worker, pod *v1.Pod, state *cri.PodState, removed bool) (done bool, next time.Duration) {
	wk.mu.Lock()
	admitted, rejected := wk.admitted, wk.rejected
	wk.mu.Unlock()
	if !admitted && !rejected {
		finished := pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed
		reason, msg := "", ""
		if !finished && !removed && pod.DeletionTimestamp == nil && len(state.Sandboxes) == 0 && len(state.Containers) == 0 {
			reason, msg = w.admit(pod)
		}
		wk.mu.Lock()
		wk.admitted, wk.rejected = reason == "", reason != ""
		rejected = wk.rejected
		wk.mu.Unlock()
		if rejected {
			klog.FromContext(ctx).Info("Pod rejected", "pod", klog.KObj(pod), "reason", reason, "message", msg)
			w.event(pod, nil, v1.EventTypeWarning, reason, "%s", msg)
			now := metav1.Now() // upstream's status manager starts every pod it reports, rejected ones too
			w.cfg.Status.SetStatus(pod, v1.PodStatus{Phase: v1.PodFailed, Reason: reason, Message: "Pod was rejected: " + msg,
				QOSClass: pod.Status.QOSClass, Conditions: pod.Status.Conditions, StartTime: &now})
		}
	}
	if !rejected {
		return false, -1
	}
	if removed {
		w.cfg.Status.Forget(pod.UID)
		return true, 0
	}
	if pod.DeletionTimestamp != nil {
		uid := pod.UID
		err := w.cfg.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return false, time.Second
		}
	}
	return false, 0
}

// stillCreating reports the pod's containers as ContainerCreating (its volumes or sandbox
// could not be made yet) and returns when to try again.
func (w *Workers) stillCreating(wk *worker, pod *v1.Pod, state *cri.PodState, deadline bool) time.Duration {
	waiting := map[string]status.Waiting{}
	for i := range pod.Spec.Containers {
		waiting[pod.Spec.Containers[i].Name] = status.Waiting{Reason: "ContainerCreating"}
	}
	w.setWaiting(wk, waiting)
	w.cfg.Status.SetStatus(pod, w.podStatus(pod, state, waiting, deadline, false, nil))
	return 2 * time.Second
}

// podStatus derives the pod's status from the runtime state and the waiting reasons (ev:
// the pass's eviction order, nil for none).
func (w *Workers) podStatus(pod *v1.Pod, state *cri.PodState, waiting map[string]status.Waiting, deadline, podFailed bool, ev *eviction) v1.PodStatus {
	readTerminationMessages(state)
	in := status.Input{Pod: pod, State: state, Waiting: waiting, HostIPs: w.cfg.HostIPs, Now: time.Now(),
		Terminal: pod.DeletionTimestamp != nil, RuntimeName: w.cfg.RuntimeName}
	if p := w.cfg.Probes; p != nil {
		in.Started = func(c *v1.Container, id string) bool { return p.Started(pod.UID, c, id) }
		in.Ready = func(c *v1.Container, id string) bool { return p.Ready(pod.UID, c, id) }
	}
	in.Failed, in.DeadlineExceeded = podFailed, deadline
	if ev != nil {
		in.Evicted = &ev.status
	}
	in.ResizeConditions = w.cfg.Allocation.Conditions(pod.UID)
	in.Actuated.Containers = w.actuatedResources(pod, state)
	return status.Generate(in)
}

func (w *Workers) setWaiting(wk *worker, waiting map[string]status.Waiting) {
	wk.mu.Lock()
	wk.waiting = waiting
	wk.mu.Unlock()
}

// gracePeriod: the deletion's grace period if the pod is being deleted, else the spec's;
// never under 2s.
func gracePeriod(pod *v1.Pod) int64 {
	g := int64(30)
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		g = *pod.Spec.TerminationGracePeriodSeconds
	}
	if pod.DeletionGracePeriodSeconds != nil {
		g = *pod.DeletionGracePeriodSeconds
	}
	return max(g, minGracePeriod)
}

func deadlineExceeded(pod *v1.Pod, now time.Time) bool {
	d := pod.Spec.ActiveDeadlineSeconds
	s := pod.Status.StartTime
	return d != nil && s != nil && now.Sub(s.Time) >= time.Duration(*d)*time.Second
}

func activeDeadlineIn(pod *v1.Pod, now time.Time) time.Duration {
	d := pod.Spec.ActiveDeadlineSeconds
	s := pod.Status.StartTime
	if d == nil || s == nil {
		return 0
	}
	return s.Time.Add(time.Duration(*d) * time.Second).Sub(now)
}

// killPod stops the pod's containers (each running its preStop hook within the grace
// period): regular containers in parallel first, then sidecars one by one in reverse
// order, as upstream; then every sandbox.
func (w *Workers) killPod(ctx context.Context, pod *v1.Pod, st *cri.PodState, grace int64) {
	podIP := ""
	if sb := st.ReadySandbox(); sb != nil && len(sb.IPs) > 0 {
		podIP = sb.IPs[0]
	}
	stop := func(c cri.Container) {
		spec := containerByName(pod, c.Name)
		g := grace
		if spec == nil && c.GracePeriod >= 0 {
			g = max(c.GracePeriod, minGracePeriod) // the spec is gone: use what was recorded
		}
		w.event(pod, spec, v1.EventTypeNormal, "Killing", "Stopping container %s", c.Name)
		w.stopContainer(ctx, pod, spec, c.Name, c.ID, g, podIP)
	}
	var wg sync.WaitGroup
	var sidecars []cri.Container
	for _, c := range st.Containers {
		if !c.MayRun() {
			continue
		}
		if c.Init {
			sidecars = append(sidecars, c)
			continue
		}
		wg.Go(func() { stop(c) })
	}
	wg.Wait()
	// Sidecars in reverse spec order.
	for i := len(pod.Spec.InitContainers) - 1; i >= 0; i-- {
		for _, c := range sidecars {
			if c.Name == pod.Spec.InitContainers[i].Name {
				stop(c)
			}
		}
	}
	for _, sb := range st.Sandboxes {
		if sb.Ready {
			if err := w.cfg.Runtime.StopSandbox(ctx, sb.ID); err != nil {
				klog.FromContext(ctx).Error(err, "Stopping sandbox failed", "pod", klog.KObj(pod))
			}
		}
	}
}

func (w *Workers) removeSandboxes(ctx context.Context, pod *v1.Pod, st *cri.PodState) {
	for _, sb := range st.Sandboxes {
		_ = w.cfg.Runtime.StopSandbox(ctx, sb.ID)
		if err := w.cfg.Runtime.RemoveSandbox(ctx, sb.ID); err != nil {
			klog.FromContext(ctx).Error(err, "Removing sandbox failed", "pod", klog.KObj(pod))
			continue
		}
		// The runtime removed the sandbox's containers with it.
		for _, ct := range st.Containers {
			if ct.SandboxID == sb.ID {
				w.unlinkLog(ctx, pod, &ct)
			}
		}
	}
}

// createSandbox forms the sandbox config, as upstream's generatePodSandboxConfig, and runs
// it. A pod asking for a user namespace the runtime handler cannot give fails here with
// upstream's message (no sandbox is made: it never runs with the host's users).
func (w *Workers) createSandbox(ctx context.Context, pod *v1.Pod, attempt uint32) (string, error) {
	o, err := w.podSandboxOptions(pod)
	if err != nil {
		return "", err
	}
	handler, err := w.runtimeHandler(ctx, pod)
	if err != nil {
		return "", err
	}
	if o.Userns, err = w.cfg.Userns.PodNamespace(ctx, pod, handler); err != nil {
		return "", err
	}
	cfg, err := cri.SandboxConfig(pod, attempt, o)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		return "", err
	}
	return w.cfg.Runtime.RunSandbox(ctx, cfg, handler)
}

// podUserns is the pod's user namespace for its containers' configs, the same as its
// sandbox got (only a `hostUsers: false` pod needs its RuntimeClass handler).
func (w *Workers) podUserns(ctx context.Context, pod *v1.Pod) (*runtimeapi.UserNamespace, error) {
	handler := ""
	if h := pod.Spec.HostUsers; h != nil && !*h {
		var err error
		if handler, err = w.runtimeHandler(ctx, pod); err != nil {
			return nil, err
		}
	}
	return w.cfg.Userns.PodNamespace(ctx, pod, handler)
}

// runtimeHandler is the CRI handler of the pod's runtimeClassName (the RuntimeClass
// object's handler), as upstream looks it up; unknown classes fail sandbox creation.
func (w *Workers) runtimeHandler(ctx context.Context, pod *v1.Pod) (string, error) {
	name := pod.Spec.RuntimeClassName
	if name == nil || *name == "" {
		return "", nil
	}
	if w.cfg.Client == nil {
		return "", errStandalone
	}
	rc, err := w.cfg.Client.NodeV1().RuntimeClasses().Get(ctx, *name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("runtimeclass.node.k8s.io %q not found", *name) // upstream's words
	}
	if err != nil {
		return "", err
	}
	return rc.Handler, nil
}

func (w *Workers) podDir(pod *v1.Pod) string {
	return filepath.Join(w.cfg.RootDir, "pods", string(pod.UID))
}

// Termination message limits, as upstream.
const (
	maxTermMsgBytes    = 4096
	maxTermMsgLogBytes = 2048
	maxTermMsgLogLines = 80
)

// readTerminationMessages adds to exited containers' messages what upstream's
// convertToKubeContainerStatus does, appended to the runtime's message after ": ".
func readTerminationMessages(st *cri.PodState) {
	for i := range st.Containers {
		c := &st.Containers[i]
		if c.State != cri.StateExited {
			continue
		}
		msg := terminationMessage(c)
		if msg == "" {
			continue
		}
		if c.Message != "" {
			c.Message += ": "
		}
		c.Message += msg
	}
}

// terminationMessage is the last 4096 bytes of the container's termination-message file
// or, with FallbackToLogsOnError, a failure (not ContainerCannotRun) and an empty or
// missing file, the tail of its log; errors read as upstream reports them.
func terminationMessage(c *cri.Container) string {
	fallback := c.TermMsgPolicy == string(v1.TerminationMessageFallbackToLogsOnError) && c.ExitCode != 0 && c.Reason != "ContainerCannotRun"
	if c.TermMsgHostPath != "" {
		data, err := readAtMostLast(c.TermMsgHostPath, maxTermMsgBytes)
		switch {
		case os.IsNotExist(err):
		case err != nil:
			return fmt.Sprintf("Error on reading termination log %s: %v", c.TermMsgHostPath, err)
		case len(data) > 0 || !fallback:
			return string(data)
		}
	}
	if !fallback || c.LogPath == "" {
		return ""
	}
	msg, err := cri.TailLogContent(c.LogPath, maxTermMsgLogLines, maxTermMsgLogBytes)
	if err != nil {
		return fmt.Sprintf("Error on reading termination message from logs: %v", err)
	}
	return msg
}

// readAtMostLast reads the last limit bytes of the file at path.
func readAtMostLast(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(fi.Size()-limit, 0)
	buf := make([]byte, fi.Size()-off)
	n, err := f.ReadAt(buf, off)
	if err == io.EOF {
		err = nil
	}
	return buf[:n], err
}

func containerByName(pod *v1.Pod, name string) *v1.Container {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.EphemeralContainers {
		if ec := &pod.Spec.EphemeralContainers[i]; ec.Name == name {
			return (*v1.Container)(&ec.EphemeralContainerCommon)
		}
	}
	return nil
}

// isRegular: c (from containerByName) is one of the pod's regular containers.
func isRegular(pod *v1.Pod, c *v1.Container) bool {
	for i := range pod.Spec.Containers {
		if &pod.Spec.Containers[i] == c {
			return true
		}
	}
	return false
}

// podDesc is upstream's format.Pod: name_namespace(uid).
func podDesc(pod *v1.Pod) string {
	return fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
}

// event records an event on the pod, on the container's field path when c is given.
func (w *Workers) event(pod *v1.Pod, c *v1.Container, typ, reason, format string, args ...any) {
	w.cfg.Recorder.Eventf(ContainerRef(pod, c), typ, reason, format, args...)
}

// ContainerRef is the event reference upstream uses: the pod, with the container's field
// path (spec.containers{name}, spec.initContainers{name} or spec.ephemeralContainers{name})
// when c is given.
func ContainerRef(pod *v1.Pod, c *v1.Container) *v1.ObjectReference {
	ref := &v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, ResourceVersion: pod.ResourceVersion}
	if c != nil {
		field := "spec.containers{%s}"
		for i := range pod.Spec.InitContainers {
			if pod.Spec.InitContainers[i].Name == c.Name {
				field = "spec.initContainers{%s}"
			}
		}
		for i := range pod.Spec.EphemeralContainers {
			if pod.Spec.EphemeralContainers[i].Name == c.Name {
				field = "spec.ephemeralContainers{%s}"
			}
		}
		ref.FieldPath = fmt.Sprintf(field, c.Name)
	}
	return ref
}

// killUnhealthy stops running containers that failed their liveness or startup probe, as
// upstream: event Killing "Container X failed liveness probe, will be restarted", grace from
// the probe's terminationGracePeriodSeconds when set. When none will be restarted and no
// other regular container keeps running, upstream kills the whole pod instead, and the
// event says "Stopping container X". It reports whether it killed any.
func (w *Workers) killUnhealthy(ctx context.Context, pod *v1.Pod, st *cri.PodState) bool {
	sb := st.ReadySandbox()
	if w.cfg.Probes == nil || sb == nil {
		return false
	}
	failing, kept := w.unhealthy(pod, st, sb.ID)
	restart := pod.Spec.RestartPolicy != v1.RestartPolicyNever
	podIP := ""
	if len(sb.IPs) > 0 {
		podIP = sb.IPs[0]
	}
	for _, f := range failing {
		msg := fmt.Sprintf("Container %s failed %s probe", f.spec.Name, strings.ToLower(string(f.kind)))
		switch {
		case restart:
			msg += ", will be restarted"
		case kept == 0:
			msg = "Stopping container " + f.spec.Name
		}
		w.event(pod, f.spec, v1.EventTypeNormal, "Killing", "%s", msg)
		grace := gracePeriod(pod)
		if f.probe.TerminationGracePeriodSeconds != nil {
			grace = max(*f.probe.TerminationGracePeriodSeconds, minGracePeriod)
		}
		w.stopContainer(ctx, pod, f.spec, f.spec.Name, f.id, grace, podIP)
	}
	return len(failing) > 0
}

type failedProbe struct {
	spec  *v1.Container
	id    string
	kind  probe.Kind
	probe *v1.Probe
}

// unhealthy lists the running containers of sandbox sb that failed a liveness or startup
// probe, and counts the running regular containers that did not.
func (w *Workers) unhealthy(pod *v1.Pod, st *cri.PodState, sb string) (failing []failedProbe, kept int) {
	for _, inst := range st.Containers {
		if inst.State != cri.StateRunning || inst.SandboxID != sb {
			continue
		}
		c := containerByName(pod, inst.Name)
		if c == nil {
			continue
		}
		kind, pr, failed := w.cfg.Probes.Failed(pod.UID, c, inst.ID)
		switch {
		case failed:
			failing = append(failing, failedProbe{spec: c, id: inst.ID, kind: kind, probe: pr})
		case isRegular(pod, c):
			kept++
		}
	}
	return failing, kept
}

// syncProbes points the probe workers at the pod's running containers (none once the pod
// is going away).
func (w *Workers) syncProbes(pod *v1.Pod, st *cri.PodState, stopping bool) {
	p := w.cfg.Probes
	if p == nil {
		return
	}
	sb := st.ReadySandbox()
	if stopping || sb == nil {
		p.RemovePod(pod.UID)
		return
	}
	running := map[string]probe.Running{}
	for _, inst := range st.Containers {
		if inst.State == cri.StateRunning && inst.SandboxID == sb.ID {
			if _, seen := running[inst.Name]; !seen {
				running[inst.Name] = probe.Running{ID: inst.ID, StartedAt: inst.StartedAt}
			}
		}
	}
	podIP := ""
	if len(sb.IPs) > 0 {
		podIP = sb.IPs[0]
	}
	p.Sync(pod, running, podIP)
}

func (w *Workers) sandboxOptions() cri.SandboxOptions {
	return cri.SandboxOptions{NodeName: w.cfg.NodeName, PodLogsDir: w.cfg.PodLogsDir, ClusterDomain: w.cfg.DNS.ClusterDomain,
		CgroupsPerQOS: w.cfg.CgroupsPerQOS, CgroupRoot: w.cfg.CgroupRoot, CgroupDriver: w.cfg.CgroupDriver}
}
