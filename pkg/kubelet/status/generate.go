// Package status derives PodStatus from the pod spec and the runtime state (a pure
// function, GenerateStatus) and is the only writer of PodStatus to the API (Manager).
package status

import (
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// Waiting is why a container is not running although it should be, as decided by the
// last sync (e.g. CrashLoopBackOff, ErrImagePull, CreateContainerConfigError).
type Waiting struct{ Reason, Message string }

// Input is everything a pod's status is derived from.
type Input struct {
	Pod     *v1.Pod
	State   *cri.PodState
	Waiting map[string]Waiting // by container name
	HostIPs []string
	Now     time.Time
	// RuntimeName is the runtime's name from its CRI Version answer ("containerd",
	// "cri-o"): container IDs read "<RuntimeName>://<id>", as upstream forms them.
	RuntimeName string
	// Started and Ready give probe results for a running container instance; nil means
	// started and ready as soon as it runs (no probes).
	Started func(c *v1.Container, containerID string) bool
	Ready   func(c *v1.Container, containerID string) bool
	// Actuated is what the node reports as applied to the pod's cgroup and containers
	// (resources.go); the zero value reports nothing.
	Actuated Actuated
	// Terminal: the pod is being terminated (deleted): once its containers have stopped it
	// is Succeeded or Failed whatever its restartPolicy, as upstream's podIsTerminal.
	Terminal bool
	// Failed: the pod failed for good (an init container failed under restartPolicy
	// Never); DeadlineExceeded: it ran past activeDeadlineSeconds. Either makes it Failed,
	// its conditions following.
	Failed, DeadlineExceeded bool
	// Evicted: the eviction manager stops the pod. Its condition (DisruptionTarget) is
	// reported at once; the phase turns Failed with reason Evicted once no container
	// runs, as upstream's status manager holds a terminal phase back until then.
	Evicted *Eviction
	// ResizeConditions are the pod's PodResizePending and PodResizeInProgress conditions
	// (package allocation), reported after the kubelet's others unless the pod finished.
	ResizeConditions []v1.PodCondition
}

// Eviction is why the eviction manager stopped a pod.
type Eviction struct {
	Message string
	// Condition is the DisruptionTarget condition (nil for local storage limits).
	Condition *v1.PodCondition
}

// Generate derives the pod's status. Conditions not owned by the kubelet (PodScheduled,
// readiness gates' own conditions, ...) are kept from the previous status; a condition's
// lastTransitionTime changes only when its status changes.
func Generate(in Input) v1.PodStatus {
	pod, old := in.Pod, in.Pod.Status
	now := metav1.NewTime(in.Now)
	st := v1.PodStatus{
		QOSClass:              old.QOSClass,
		NominatedNodeName:     old.NominatedNodeName,
		StartTime:             old.StartTime,
		Resize:                old.Resize,
		ResourceClaimStatuses: old.ResourceClaimStatuses,
	}
	if st.StartTime == nil {
		st.StartTime = &now
	}
	sb := in.State.ReadySandbox()
	setAddresses(&st, pod, old, sb, in.HostIPs)

	// Regular containers that ever ran mean initialization finished, even if sidecars have
	// since stopped (a completed pod).
	regularStarted := false
	for i := range pod.Spec.Containers {
		if last, _ := in.State.Latest(pod.Spec.Containers[i].Name); last != nil {
			regularStarted = true
		}
	}
	initDone := true
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cs := containerStatus(c, in, "PodInitializing", old.InitContainerStatuses)
		if !isSidecar(c) {
			// As upstream's prober manager: a regular init container is ready once it
			// exited 0, never while it runs or after it failed.
			cs.Ready = cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0
		}
		if !initContainerDone(c, cs, regularStarted) {
			initDone = false
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
	}
	defaultWaiting := "ContainerCreating"
	if !initDone {
		defaultWaiting = "PodInitializing"
	}
	for i := range pod.Spec.Containers {
		st.ContainerStatuses = append(st.ContainerStatuses, containerStatus(&pod.Spec.Containers[i], in, defaultWaiting, old.ContainerStatuses))
	}
	st.EphemeralContainerStatuses = ephemeralStatuses(pod, in, old.EphemeralContainerStatuses)
	st.Phase = phase(pod, st, initDone, in.Terminal && pod.Annotations[annotationConfigSource] != "file")
	if isTerminal(old.Phase) {
		st.Phase = old.Phase // never leave a terminal phase
	}
	st.Reason, st.Message = old.Reason, old.Message
	if !isTerminal(old.Phase) {
		if in.Failed {
			st.Phase = v1.PodFailed
		}
		if in.DeadlineExceeded {
			st.Phase, st.Reason, st.Message = v1.PodFailed, "DeadlineExceeded", "Pod was active on the node longer than the specified deadline"
		}
		if in.Evicted != nil && !in.State.AnyRunning() {
			st.Phase, st.Reason, st.Message = v1.PodFailed, "Evicted", in.Evicted.Message
		}
	}
	// Upstream's messages for a pod that needs a (new) sandbox.
	sandboxMsg := "no pod sandbox exists"
	if len(in.State.Sandboxes) > 0 {
		sandboxMsg = "pod sandbox is not ready"
	}
	st.Conditions = conditions(pod, st, sb != nil || pod.Spec.HostNetwork && len(in.State.Sandboxes) > 0, sandboxMsg, initDone, old.Conditions, now)
	if in.Evicted != nil && in.Evicted.Condition != nil && findCondition(st.Conditions, v1.DisruptionTarget) == nil {
		c := *in.Evicted.Condition
		c.LastTransitionTime = now
		st.Conditions = append(st.Conditions, c)
	}
	if !isTerminal(st.Phase) {
		st.Conditions = append(st.Conditions, in.ResizeConditions...)
	}
	st.Resources, st.AllocatedResources = podResources(pod, old, in.Actuated)
	return st
}

// setAddresses sets the node's and the pod's addresses: a host-network pod has the node's,
// others their ready sandbox's; with no ready sandbox (a finished pod, a sandbox being
// replaced) the last known ones stay, as upstream's PLEG keeps them.
func setAddresses(st *v1.PodStatus, pod *v1.Pod, old v1.PodStatus, sb *cri.Sandbox, hostIPs []string) {
	for _, ip := range hostIPs {
		st.HostIPs = append(st.HostIPs, v1.HostIP{IP: ip})
	}
	if len(st.HostIPs) > 0 {
		st.HostIP = st.HostIPs[0].IP
	}
	switch {
	case pod.Spec.HostNetwork:
		st.PodIP, st.PodIPs = st.HostIP, nil
		for _, ip := range st.HostIPs {
			st.PodIPs = append(st.PodIPs, v1.PodIP{IP: ip.IP})
		}
	case sb != nil:
		for _, ip := range sb.IPs {
			st.PodIPs = append(st.PodIPs, v1.PodIP{IP: ip})
		}
		if len(st.PodIPs) > 0 {
			st.PodIP = st.PodIPs[0].IP
		}
	default:
		st.PodIP, st.PodIPs = old.PodIP, old.PodIPs
	}
}

// initContainerDone: a sidecar is done once running and started (its startup probe, if
// any, passed); any other init container once it exited 0.
func initContainerDone(c *v1.Container, cs v1.ContainerStatus, regularStarted bool) bool {
	if isSidecar(c) {
		return cs.State.Running != nil && (cs.Started == nil || *cs.Started) || regularStarted
	}
	return cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0
}

// isSidecar: a restartable init container (restartPolicy Always).
func isSidecar(c *v1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
}

func isTerminal(p v1.PodPhase) bool { return p == v1.PodSucceeded || p == v1.PodFailed }

func containerStatus(c *v1.Container, in Input, defaultWaiting string, old []v1.ContainerStatus) v1.ContainerStatus {
	cs := v1.ContainerStatus{Name: c.Name, Image: c.Image, VolumeMounts: volumeMountStatuses(c)}
	latest, previous := in.State.Latest(c.Name)
	if latest != nil {
		cs.RestartCount = int32(latest.RestartCount)
		cs.ContainerID = containerID(in.RuntimeName, latest.ID)
		if latest.Image != "" {
			cs.Image = displayImage(c.Image, latest.Image)
		}
		cs.ImageID = latest.ImageRef
		cs.User = latest.User
		if previous != nil && previous.State == cri.StateExited {
			cs.LastTerminationState = v1.ContainerState{Terminated: terminated(previous, in.RuntimeName)}
		}
		setContainerResources(&cs, c, latest, old, in.Actuated)
	} else {
		// Keep restartCount and lastState of instances that are gone (e.g. garbage
		// collected or removed with an old sandbox).
		for _, o := range old {
			if o.Name == c.Name {
				cs.RestartCount, cs.LastTerminationState = o.RestartCount, o.LastTerminationState
			}
		}
	}
	w, hasWaiting := in.Waiting[c.Name]
	switch {
	case latest != nil && latest.State == cri.StateRunning && !hasWaiting:
		cs.State.Running = &v1.ContainerStateRunning{StartedAt: metav1.NewTime(latest.StartedAt)}
		started := in.Started == nil || in.Started(c, latest.ID)
		cs.Started = &started
		cs.Ready = started && (in.Ready == nil || in.Ready(c, latest.ID))
	case hasWaiting:
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: w.Reason, Message: w.Message}
		if latest != nil && latest.State == cri.StateExited {
			cs.LastTerminationState = v1.ContainerState{Terminated: terminated(latest, in.RuntimeName)}
		}
		cs.Started = new(bool)
	case latest != nil && latest.State == cri.StateExited:
		cs.State.Terminated = terminated(latest, in.RuntimeName)
		cs.Started = new(bool)
	default:
		cs.State.Waiting = &v1.ContainerStateWaiting{Reason: defaultWaiting}
		cs.Started = new(bool)
	}
	return cs
}

// ephemeralStatuses are the ephemeral containers' statuses, sorted by name, as upstream
// builds them: like other containers', but never ready nor started (no probes), waiting
// PodInitializing by default whenever the pod has init containers, and a terminated
// status kept once the runtime no longer has the container (it is never run again).
func ephemeralStatuses(pod *v1.Pod, in Input, old []v1.ContainerStatus) []v1.ContainerStatus {
	if len(pod.Spec.EphemeralContainers) == 0 {
		return nil
	}
	defaultWaiting := "ContainerCreating"
	if len(pod.Spec.InitContainers) > 0 {
		defaultWaiting = "PodInitializing"
	}
	eph := in
	eph.Started, eph.Ready = nil, nil
	out := make([]v1.ContainerStatus, 0, len(pod.Spec.EphemeralContainers))
	for i := range pod.Spec.EphemeralContainers {
		c := (*v1.Container)(&pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		cs := containerStatus(c, eph, defaultWaiting, old)
		_, waiting := in.Waiting[c.Name]
		if last, _ := in.State.Latest(c.Name); last == nil && !waiting {
			for _, o := range old {
				if o.Name == c.Name && o.State.Terminated != nil {
					cs = o
				}
			}
		}
		cs.Ready, cs.Started = false, nil
		out = append(out, cs)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// displayImage reports the image as the spec names it when the runtime's name is the same
// image fully qualified (docker.io/library/busybox:1.35 for busybox:1.35), as upstream shows.
func displayImage(spec, runtime string) string {
	if strings.HasSuffix(runtime, "/"+spec) || runtime == spec {
		return spec
	}
	return runtime
}

// containerID is a container's ID as the API shows it: "<runtime>://<id>".
func containerID(runtimeName, id string) string { return runtimeName + "://" + id }

func terminated(c *cri.Container, runtimeName string) *v1.ContainerStateTerminated {
	t := &v1.ContainerStateTerminated{
		ExitCode:    c.ExitCode,
		Reason:      c.Reason,
		Message:     c.Message,
		StartedAt:   metav1.NewTime(c.StartedAt),
		FinishedAt:  metav1.NewTime(c.FinishedAt),
		ContainerID: containerID(runtimeName, c.ID),
	}
	if t.Reason == "" {
		t.Reason = "Error"
		if c.ExitCode == 0 {
			t.Reason = "Completed"
		}
	}
	if c.StartedAt.IsZero() {
		// Never started (StartError): upstream converts the runtime's 0 to the epoch.
		t.StartedAt = metav1.NewTime(time.Unix(0, 0))
	}
	return t
}

// phase follows the upstream kubelet's getPhase: terminal (a pod being terminated; upstream leaves static pods
// out) makes stopped containers final whatever the restartPolicy.
func phase(pod *v1.Pod, st v1.PodStatus, initDone, terminal bool) v1.PodPhase {
	if !initDone {
		for i, cs := range st.InitContainerStatuses {
			if isSidecar(&pod.Spec.InitContainers[i]) {
				continue // sidecars are restarted, never fail the pod
			}
			if t := cs.State.Terminated; t != nil && t.ExitCode != 0 && pod.Spec.RestartPolicy == v1.RestartPolicyNever {
				return v1.PodFailed
			}
		}
		return v1.PodPending
	}
	var running, waiting, stopped, succeeded int
	for _, cs := range st.ContainerStatuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.State.Waiting != nil:
			if cs.LastTerminationState.Terminated != nil {
				stopped++
			} else {
				waiting++
			}
		}
	}
	switch {
	case waiting > 0:
		return v1.PodPending
	case running > 0:
		return v1.PodRunning
	case stopped > 0 && terminal:
		if stopped == succeeded {
			return v1.PodSucceeded
		}
		return v1.PodFailed
	case stopped > 0:
		switch pod.Spec.RestartPolicy {
		case v1.RestartPolicyAlways:
			return v1.PodRunning // restarting
		case v1.RestartPolicyOnFailure:
			if stopped == succeeded {
				return v1.PodSucceeded
			}
			return v1.PodRunning
		default:
			if stopped == succeeded {
				return v1.PodSucceeded
			}
			return v1.PodFailed
		}
	}
	return v1.PodPending
}

// kubeletOwned are the pod conditions the kubelet writes; others belong to other writers.
var kubeletOwned = map[v1.PodConditionType]bool{
	v1.PodReadyToStartContainers: true, v1.PodInitialized: true, v1.ContainersReady: true, v1.PodReady: true,
	v1.PodScheduled:     true, // upstream's kubelet always reports it True (pods bound by nodeName too)
	v1.PodResizePending: true, v1.PodResizeInProgress: true,
}

// WithForeignConditions returns every condition others own as the API has it (readiness
// gates, DisruptionTarget ...), first as upstream lists them, then the kubelet's own from
// ours.
func WithForeignConditions(ours, api []v1.PodCondition) []v1.PodCondition {
	var out []v1.PodCondition
	for _, c := range api {
		if !kubeletOwned[c.Type] {
			out = append(out, c)
		}
	}
	for _, c := range ours {
		// A DisruptionTarget the kubelet set itself (an eviction) stands until the API has one.
		byKubelet := c.Type == v1.DisruptionTarget && c.Reason == v1.PodReasonTerminationByKubelet && findCondition(api, c.Type) == nil
		if kubeletOwned[c.Type] || byKubelet {
			out = append(out, c)
		}
	}
	return out
}

func conditions(pod *v1.Pod, st v1.PodStatus, sandboxReady bool, sandboxMsg string, initDone bool, old []v1.PodCondition, now metav1.Time) []v1.PodCondition {
	owned := kubeletOwned
	var out []v1.PodCondition
	// PodReadyToStartContainers
	rtsc := v1.PodCondition{Type: v1.PodReadyToStartContainers, Status: v1.ConditionTrue}
	if !sandboxReady {
		rtsc.Status, rtsc.Reason, rtsc.Message = v1.ConditionFalse, "PodSandboxNotReady", sandboxMsg
	}
	out = append(out, rtsc)

	// Initialized
	init := v1.PodCondition{Type: v1.PodInitialized, Status: v1.ConditionTrue}
	if st.Phase == v1.PodSucceeded {
		init.Reason = "PodCompleted"
	} else if !initDone {
		var incomplete []string
		for i, cs := range st.InitContainerStatuses {
			if !initContainerDone(&pod.Spec.InitContainers[i], cs, false) {
				incomplete = append(incomplete, cs.Name)
			}
		}
		init.Status, init.Reason = v1.ConditionFalse, "ContainersNotInitialized"
		init.Message = fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(incomplete, " "))
	}
	out = append(out, init)

	cr := containersReady(pod, st)
	out = append(out, cr, podReady(pod, cr, old))
	out = append(out, v1.PodCondition{Type: v1.PodScheduled, Status: v1.ConditionTrue})

	for i := range out {
		out[i].LastTransitionTime = now
		out[i].ObservedGeneration = pod.Generation
		if prev := findCondition(old, out[i].Type); prev != nil && prev.Status == out[i].Status {
			out[i].LastTransitionTime = prev.LastTransitionTime
		}
	}
	// Keep conditions owned by others (PodScheduled, readiness gates, DisruptionTarget ...).
	for _, c := range old {
		if !owned[c.Type] {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return order(out[i].Type) < order(out[j].Type) })
	return out
}

// containersReady follows upstream's GenerateContainersReadyCondition: sidecars (in spec
// order) and regular containers must all be ready. Running init containers give no
// reason of their own: the regular containers are simply not ready yet.
func containersReady(pod *v1.Pod, st v1.PodStatus) v1.PodCondition {
	cr := v1.PodCondition{Type: v1.ContainersReady, Status: v1.ConditionTrue}
	switch st.Phase {
	case v1.PodSucceeded:
		cr.Status, cr.Reason = v1.ConditionFalse, "PodCompleted"
		return cr
	case v1.PodFailed:
		cr.Status, cr.Reason = v1.ConditionFalse, "PodFailed"
		return cr
	}
	var unready []string
	for i, cs := range st.InitContainerStatuses {
		if isSidecar(&pod.Spec.InitContainers[i]) && !cs.Ready {
			unready = append(unready, cs.Name)
		}
	}
	for _, cs := range st.ContainerStatuses {
		if !cs.Ready {
			unready = append(unready, cs.Name)
		}
	}
	if len(unready) > 0 {
		cr.Status, cr.Reason = v1.ConditionFalse, "ContainersNotReady"
		cr.Message = fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
	}
	return cr
}

// podReady follows upstream's GeneratePodReadyCondition: ContainersReady's status, reason
// and message unless it is True; then every readiness gate's condition must be True, each
// one that is not named in the message.
func podReady(pod *v1.Pod, cr v1.PodCondition, old []v1.PodCondition) v1.PodCondition {
	ready := cr
	ready.Type = v1.PodReady
	if ready.Status != v1.ConditionTrue {
		return ready
	}
	var msgs []string
	for _, g := range pod.Spec.ReadinessGates {
		switch c := findCondition(old, g.ConditionType); {
		case c == nil:
			msgs = append(msgs, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", g.ConditionType))
		case c.Status != v1.ConditionTrue:
			msgs = append(msgs, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %s", g.ConditionType, c.Status))
		}
	}
	if len(msgs) > 0 {
		ready.Status, ready.Reason, ready.Message = v1.ConditionFalse, "ReadinessGatesNotReady", strings.Join(msgs, ", ")
	}
	return ready
}

// order puts conditions in the order the upstream kubelet reports them.
func order(t v1.PodConditionType) int {
	switch t {
	case v1.PodReadyToStartContainers:
		return 0
	case v1.PodInitialized:
		return 1
	case v1.PodReady:
		return 2
	case v1.ContainersReady:
		return 3
	case v1.PodScheduled:
		return 4
	}
	return -1 // others' conditions come first, as upstream keeps them ahead of its own
}

func findCondition(conds []v1.PodCondition, t v1.PodConditionType) *v1.PodCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}
