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

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
	"github.com/minikubelet/minikubelet/pkg/probe"
)

// minGracePeriod is the shortest kill window the upstream kubelet gives a container.
const minGracePeriod = 2

// sync runs one reconcile of a pod. It returns when to sync again (0: the resync period)
// and whether the worker is finished (the pod is gone).
func (w *Workers) sync(ctx context.Context, wk *worker) (time.Duration, bool) {
	logger := klog.FromContext(ctx)
	wk.mu.Lock()
	pod, removed := wk.pod.DeepCopy(), wk.removed
	wk.mu.Unlock()

	// The newest status we computed is fresher than the informer's copy, except for the
	// conditions other writers own (readiness gates ...), which only the API has.
	if st, ok := w.cfg.Status.Status(pod.UID); ok {
		st.Conditions = status.WithForeignConditions(st.Conditions, pod.Status.Conditions)
		pod.Status = st
	}
	state, err := w.cfg.Runtime.PodState(ctx, w.cfg.NodeName, pod.UID)
	if err != nil {
		logger.Error(err, "Reading runtime state failed", "pod", klog.KObj(pod))
		return time.Second, false
	}

	if done, next := w.admission(ctx, wk, pod, state, removed); done || next >= 0 {
		return max(next, 0), done
	}

	// Containers that failed liveness or startup probes are killed; the decision below
	// then restarts them per restartPolicy.
	if w.killUnhealthy(ctx, pod, state) {
		if s, err := w.cfg.Runtime.PodState(ctx, w.cfg.NodeName, pod.UID); err == nil {
			state = s
		}
	}

	deleting := pod.DeletionTimestamp != nil
	finished := pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed
	deadline := !finished && deadlineExceeded(pod, time.Now())
	acts := computeActions(pod, state, removed || deleting || finished || deadline, w.inBackOff(pod), func(c *v1.Container, id string) bool { return w.cfg.Probes.Started(pod.UID, c, id) })

	acting := len(acts.Start) > 0 || acts.KillPod || len(acts.Kill) > 0 || acts.CreateSandbox
	if acting && !removed {
		// As upstream: first report what was observed (an exit, a missing sandbox), then act.
		wk.mu.Lock()
		prev := wk.waiting
		wk.mu.Unlock()
		observed := map[string]status.Waiting{}
		for name, wt := range prev {
			if last, _ := state.Latest(name); last == nil || last.State != cri.StateRunning {
				observed[name] = wt
			}
		}
		w.cfg.Status.SetStatus(pod, w.podStatus(pod, state, observed, deadline, acts.PodFailed))
	}

	waiting := map[string]status.Waiting{}
	if acts.KillPod {
		w.killPod(ctx, pod, state, gracePeriod(pod))
	}
	for _, c := range acts.Kill {
		spec := containerByName(pod, c.Name)
		w.event(pod, spec, v1.EventTypeNormal, "Killing", "Container %s definition changed, will be restarted", c.Name)
		w.stopContainer(ctx, pod, spec, c.Name, c.ID, gracePeriod(pod), "")
	}
	var sandboxID string
	if sb := state.ReadySandbox(); sb != nil && !acts.KillPod {
		sandboxID = sb.ID
	}
	if (acts.CreateSandbox || len(acts.Start) > 0) && !removed && !deleting {
		// Volumes first, as upstream: no sandbox until every volume is ready.
		if _, err := w.cfg.Volumes.SetUp(ctx, pod, nil); err != nil {
			logger.V(2).Info("Volumes not ready", "pod", klog.KObj(pod), "err", err)
			w.event(pod, nil, v1.EventTypeWarning, "FailedMount", "%v", err)
			return w.stillCreating(wk, pod, state, deadline), false
		}
	}
	if acts.CreateSandbox && !removed && !deleting {
		id, err := w.createSandbox(ctx, pod, acts.SandboxAttempt)
		if err != nil {
			logger.Error(err, "Creating pod sandbox failed", "pod", klog.KObj(pod))
			w.event(pod, nil, v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
			return w.stillCreating(wk, pod, state, deadline), false
		}
		sandboxID = id
	}
	var requeue time.Duration
	if sandboxID != "" {
		for _, s := range acts.Start {
			if wt, err := w.startContainer(ctx, pod, sandboxID, s, state); err != nil {
				waiting[s.Container.Name] = wt
				logger.V(2).Info("Container did not start", "pod", klog.KObj(pod), "container", s.Container.Name, "reason", wt.Reason, "err", err)
				if d := w.pullRetryIn(pod, s.Container); d > 0 && (requeue == 0 || d < requeue) {
					requeue = d
				}
			}
		}
	}
	for _, c := range acts.BackOff {
		last, _ := state.Latest(c.Name)
		key := backOffKey(pod, c)
		d := w.crashBack.Get(key)
		waiting[c.Name] = status.Waiting{Reason: "CrashLoopBackOff",
			Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", d, c.Name, podDesc(pod))}
		w.event(pod, c, v1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s", c.Name, podDesc(pod))
		if left := time.Until(last.FinishedAt.Add(d)); left > 0 && (requeue == 0 || left < requeue) {
			requeue = left + 10*time.Millisecond
		}
	}
	w.setWaiting(wk, waiting)

	// Observe again: the status reports what is, not what was asked for.
	if acting {
		if s, err := w.cfg.Runtime.PodState(ctx, w.cfg.NodeName, pod.UID); err == nil {
			state = s
		}
	}
	st := w.podStatus(pod, state, waiting, deadline, acts.PodFailed)

	w.syncProbes(pod, state, removed || deleting || finished || deadline)
	if removed {
		w.removeSandboxes(ctx, pod, state)
		w.removePodCgroups(ctx, pod)
		w.cfg.Status.Forget(pod.UID)
		w.crashBack.Reset(string(pod.UID))
		// Unmount before removing: RemoveAll must never walk into a live mount.
		if err := w.cfg.Volumes.TearDown(pod.UID); err != nil {
			logger.Error(err, "Tearing down volumes failed", "pod", klog.KObj(pod))
		} else {
			_ = os.RemoveAll(w.podDir(pod))
		}
		return 0, true
	}
	w.cfg.Status.SetStatus(pod, st)
	if deleting && !anyRunning(state) {
		// Terminated: write the final status, release the sandbox, then delete the object.
		if err := w.cfg.Status.Flush(ctx, pod.UID); err != nil {
			logger.Error(err, "Writing final status failed", "pod", klog.KObj(pod))
		}
		w.removeSandboxes(ctx, pod, state)
		uid := pod.UID
		err := w.cfg.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			logger.Error(err, "Deleting terminated pod failed", "pod", klog.KObj(pod))
			return time.Second, false
		}
		return 0, false // the informer's delete ends the worker
	}
	if deadline || acts.PodFailed {
		return 0, false
	}
	if d := activeDeadlineIn(pod, time.Now()); d > 0 && (requeue == 0 || d < requeue) {
		requeue = d
	}
	return requeue, false
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
			w.cfg.Status.SetStatus(pod, v1.PodStatus{Phase: v1.PodFailed, Reason: reason, Message: "Pod was rejected: " + msg,
				QOSClass: pod.Status.QOSClass, Conditions: pod.Status.Conditions})
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
	w.cfg.Status.SetStatus(pod, w.podStatus(pod, state, waiting, deadline, false))
	return 2 * time.Second
}

// podStatus derives the pod's status from the runtime state and the waiting reasons.
func (w *Workers) podStatus(pod *v1.Pod, state *cri.PodState, waiting map[string]status.Waiting, deadline, podFailed bool) v1.PodStatus {
	readTerminationMessages(state)
	in := status.Input{Pod: pod, State: state, Waiting: waiting, HostIPs: w.cfg.HostIPs, Now: time.Now()}
	if p := w.cfg.Probes; p != nil {
		in.Started = func(c *v1.Container, id string) bool { return p.Started(pod.UID, c, id) }
		in.Ready = func(c *v1.Container, id string) bool { return p.Ready(pod.UID, c, id) }
	}
	st := status.Generate(in)
	if deadline {
		st.Phase, st.Reason, st.Message = v1.PodFailed, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline"
	}
	if podFailed {
		st.Phase = v1.PodFailed
	}
	return st
}

func (w *Workers) setWaiting(wk *worker, waiting map[string]status.Waiting) {
	wk.mu.Lock()
	wk.waiting = waiting
	wk.mu.Unlock()
}

func anyRunning(st *cri.PodState) bool {
	for _, c := range st.Containers {
		if c.State == cri.StateRunning || c.State == cri.StateUnknown {
			return true
		}
	}
	return false
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
	running := func(c cri.Container) bool { return c.State == cri.StateRunning || c.State == cri.StateUnknown }
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
		if !running(c) {
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
		}
	}
}

func (w *Workers) createSandbox(ctx context.Context, pod *v1.Pod, attempt uint32) (string, error) {
	o, err := w.podSandboxOptions(pod)
	if err != nil {
		return "", err
	}
	cfg, err := cri.SandboxConfig(pod, attempt, o)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		return "", err
	}
	handler, err := w.runtimeHandler(ctx, pod)
	if err != nil {
		return "", err
	}
	return w.cfg.Runtime.RunSandbox(ctx, cfg, handler)
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

// readTerminationMessages adds to exited containers' messages what the container wrote to
// its termination-message file (at most 4096 bytes) or, with FallbackToLogsOnError and a
// non-zero exit, the tail of its log; appended to the runtime's message after ": ", as
// upstream does.
func readTerminationMessages(st *cri.PodState) {
	for i := range st.Containers {
		c := &st.Containers[i]
		if c.State != cri.StateExited {
			continue
		}
		msg := ""
		if f, err := os.Open(c.TermMsgHostPath); err == nil && c.TermMsgHostPath != "" {
			buf := make([]byte, maxTermMsgBytes)
			n, _ := io.ReadFull(f, buf)
			f.Close()
			msg = string(buf[:n])
		}
		if msg == "" && c.TermMsgPolicy == string(v1.TerminationMessageFallbackToLogsOnError) && c.ExitCode != 0 && c.LogPath != "" {
			msg, _ = cri.TailLogContent(c.LogPath, maxTermMsgLogLines, maxTermMsgLogBytes)
		}
		if msg == "" {
			continue
		}
		if c.Message != "" {
			c.Message += ": "
		}
		c.Message += msg
	}
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
	return nil
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
// path (spec.containers{name} or spec.initContainers{name}) when c is given.
func ContainerRef(pod *v1.Pod, c *v1.Container) *v1.ObjectReference {
	ref := &v1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, ResourceVersion: pod.ResourceVersion}
	if c != nil {
		field := "spec.containers{%s}"
		for i := range pod.Spec.InitContainers {
			if pod.Spec.InitContainers[i].Name == c.Name {
				field = "spec.initContainers{%s}"
			}
		}
		ref.FieldPath = fmt.Sprintf(field, c.Name)
	}
	return ref
}

// killUnhealthy stops running containers that failed their liveness or startup probe, as
// upstream: event Killing "Container X failed liveness probe, will be restarted", grace from
// the probe's terminationGracePeriodSeconds when set. It reports whether it killed any.
func (w *Workers) killUnhealthy(ctx context.Context, pod *v1.Pod, st *cri.PodState) bool {
	p := w.cfg.Probes
	sb := st.ReadySandbox()
	if p == nil || sb == nil {
		return false
	}
	killed := false
	for _, inst := range st.Containers {
		if inst.State != cri.StateRunning || inst.SandboxID != sb.ID {
			continue
		}
		c := containerByName(pod, inst.Name)
		if c == nil {
			continue
		}
		kind, pr, failed := p.Failed(pod.UID, c, inst.ID)
		if !failed {
			continue
		}
		msg := fmt.Sprintf("Container %s failed %s probe", c.Name, strings.ToLower(string(kind)))
		if pod.Spec.RestartPolicy != v1.RestartPolicyNever {
			msg += ", will be restarted"
		}
		w.event(pod, c, v1.EventTypeNormal, "Killing", "%s", msg)
		grace := gracePeriod(pod)
		if pr.TerminationGracePeriodSeconds != nil {
			grace = max(*pr.TerminationGracePeriodSeconds, minGracePeriod)
		}
		podIP := ""
		if len(sb.IPs) > 0 {
			podIP = sb.IPs[0]
		}
		w.stopContainer(ctx, pod, c, c.Name, inst.ID, grace, podIP)
		killed = true
	}
	return killed
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
