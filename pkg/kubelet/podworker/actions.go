package podworker

import (
	"fmt"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// start is one container to (re)start.
type start struct {
	Container    *v1.Container
	Init         bool
	RestartCount int
	// Ephemeral: an ephemeral container (Container is its common part), started once and
	// never again; Target is its targetContainerName ("" for none).
	Ephemeral bool
	Target    string
}

// actions is what one sync must do to move the runtime toward the spec.
type actions struct {
	// KillPod: stop every container and the sandbox (the pod is finished, being deleted,
	// or its sandbox must be replaced).
	KillPod bool
	// CreateSandbox (after KillPod, if both) with this attempt number.
	CreateSandbox  bool
	SandboxAttempt uint32
	// Start these containers, in order.
	Start []start
	// Kill these running containers (their image changed, or a resize needs a restart)
	// before starting them again.
	Kill []kill
	// Resize these running containers in place: their allocated resources differ from
	// what they run with, and their resizePolicy needs no restart.
	Resize []resize
	// BackOff: containers that should restart but are in crash back-off.
	BackOff []*v1.Container
	// PodFailed: an init container failed under restartPolicy Never.
	PodFailed bool
}

// kill is a running container to stop, with the Killing event's message.
type kill struct {
	Container cri.Container
	Message   string
}

// resize is a running container whose resources change in place.
type resize struct {
	Container *v1.Container
	ID        string
	// Desired are the allocated resources, Current what it runs with.
	Desired, Current v1.ResourceRequirements
}

// actuatedFunc gives the resources a pod's running container name was last given (at
// creation or by a resize); false: not known (nothing is resized).
type actuatedFunc func(name string) (v1.ResourceRequirements, bool)

// inBackOffFunc reports whether restarting c (whose last instance is last) must wait.
type inBackOffFunc func(c *v1.Container, last *cri.Container) bool

// startedFunc reports whether the running instance containerID of c passed its startup
// probe (true when c has none); nil counts every container as started.
type startedFunc func(c *v1.Container, containerID string) bool

// computeActions decides, from the spec and the runtime state alone, what a sync does.
// It follows the upstream kubelet's computePodActions for regular, init and ephemeral
// containers.
//
//	no ready sandbox ──(something still to run)──> KillPod + CreateSandbox, start from the
//	                                                first init container (or all containers)
//	init container i: absent -> start; running -> wait; exit 0 -> next; failed -> restart
//	                  (back-off) or, with restartPolicy Never, PodFailed
//	sidecar i:        absent or stopped -> (re)start; running -> next once started (its
//	                  startupProbe passed), while the pod is still initializing
//	container: absent -> start; running -> keep (kill+start if its spec changed);
//	           exited -> restart per restartPolicy, subject to back-off
//	nothing running and nothing to start -> KillPod (the pod is done)
//	ephemeral: never started -> start (first, in a ready sandbox not being killed); else
//	           nothing, ever
//
//	running container whose allocated CPU or memory differs from what it was given:
//	           resize in place, or kill+start when its resizePolicy for a changed
//	           resource is RestartContainer (actuated nil: never)
func computeActions(pod *v1.Pod, st *cri.PodState, terminating bool, inBackOff inBackOffFunc, started startedFunc, actuated actuatedFunc) actions {
	if terminating {
		return actions{KillPod: true}
	}
	sb := st.ReadySandbox()
	if sb == nil {
		return sandboxActions(pod, st)
	}
	a := initActions(pod, st, sb, inBackOff, started, actuated)
	if a.done {
		return withEphemeral(pod, st, a.actions)
	}
	regularActions(pod, st, inBackOff, actuated, &a.actions)
	return withEphemeral(pod, st, a.actions)
}

// withEphemeral adds the ephemeral containers never started in the pod, first, as
// upstream: they may start while initialization still runs (or fails), but never into a
// sandbox that is being stopped, and never a second time (whatever became of the first).
func withEphemeral(pod *v1.Pod, st *cri.PodState, a actions) actions {
	if a.KillPod {
		return a
	}
	var eph []start
	for i := range pod.Spec.EphemeralContainers {
		ec := &pod.Spec.EphemeralContainers[i]
		if last, _ := st.Latest(ec.Name); last == nil {
			eph = append(eph, start{Container: (*v1.Container)(&ec.EphemeralContainerCommon), Ephemeral: true, Target: ec.TargetContainerName})
		}
	}
	if len(eph) > 0 {
		a.Start = append(eph, a.Start...)
	}
	return a
}

// sandboxActions: there is no ready sandbox. A new one is made when something is still to
// run, starting from the first init container (or every container).
func sandboxActions(pod *v1.Pod, st *cri.PodState) actions {
	if !anythingToRun(pod, st) {
		return actions{KillPod: len(st.Sandboxes) > 0}
	}
	a := actions{KillPod: len(st.Sandboxes) > 0, CreateSandbox: true}
	if len(st.Sandboxes) > 0 {
		a.SandboxAttempt = st.Sandboxes[0].Attempt + 1
	}
	// A new sandbox runs the init containers again from the start.
	if len(pod.Spec.InitContainers) > 0 {
		c := &pod.Spec.InitContainers[0]
		a.Start = []start{{Container: c, Init: true, RestartCount: nextRestartCount(st, c.Name)}}
		return a
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		last, _ := st.Latest(c.Name)
		if last == nil || shouldRestart(pod, last) {
			a.Start = append(a.Start, start{Container: c, RestartCount: nextRestartCount(st, c.Name)})
		}
	}
	return a
}

// initStep is the init containers' part of the decision; done: regular containers wait.
type initStep struct {
	actions
	done bool
}

// initActions: init containers, one at a time, in this sandbox. A sidecar must be
// running, and started if it has a startup probe, before the next step; it is restarted
// whenever it stops. Once a regular container ran in this sandbox the pod is initialized:
// a restarted sidecar's startup probe no longer holds anything up (upstream's
// isPreviouslyInitialized).
func initActions(pod *v1.Pod, st *cri.PodState, sb *cri.Sandbox, inBackOff inBackOffFunc, started startedFunc, actuated actuatedFunc) initStep {
	var a initStep
	wait := func() initStep { a.done = true; return a }
	startInit := func(c *v1.Container, restarts int) initStep {
		a.Start = []start{{Container: c, Init: true, RestartCount: restarts}}
		return wait()
	}
	// restart starts an exited init container again once its back-off has passed.
	restart := func(c *v1.Container, last *cri.Container) initStep {
		if inBackOff(c, last) {
			a.BackOff = append(a.BackOff, c)
			return wait()
		}
		return startInit(c, last.RestartCount+1)
	}
	initialized := regularStartedIn(pod, st, sb.ID)
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		last := latestIn(st, c.Name, sb.ID)
		if isSidecar(c) {
			switch {
			case last == nil:
				return startInit(c, nextRestartCount(st, c.Name))
			case last.State == cri.StateRunning:
				if r, restart := resizeOf(c, last, actuated); restart {
					a.Kill = append(a.Kill, resizeKill(c, last))
					return startInit(c, last.RestartCount+1)
				} else if r != nil {
					a.Resize = append(a.Resize, *r)
				}
				if !initialized && c.StartupProbe != nil && started != nil && !started(c, last.ID) {
					return wait() // for its startup probe
				}
				continue
			case last.State == cri.StateUnknown:
				return wait()
			default:
				return restart(c, last)
			}
		}
		switch {
		case last == nil:
			return startInit(c, nextRestartCount(st, c.Name))
		case last.MayRun():
			return wait() // for it to finish
		case last.State == cri.StateExited && last.ExitCode == 0:
			continue
		case pod.Spec.RestartPolicy == v1.RestartPolicyNever: // failed (or never started)
			a.PodFailed, a.KillPod = true, true
			return wait()
		default:
			return restart(c, last)
		}
	}
	return a
}

// regularActions: container absent -> start; running -> keep (kill+start if its spec
// changed); exited -> restart per restartPolicy, subject to back-off. Nothing running and
// nothing to start -> KillPod (the pod is done; sidecars go with it).
func regularActions(pod *v1.Pod, st *cri.PodState, inBackOff inBackOffFunc, actuated actuatedFunc, a *actions) {
	running := 0
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		last, _ := st.Latest(c.Name)
		switch {
		case last == nil:
			a.Start = append(a.Start, start{Container: c})
		case last.State == cri.StateRunning:
			if last.Hash != "" && last.Hash != cri.ContainerHash(c) {
				a.Kill = append(a.Kill, kill{*last, fmt.Sprintf("Container %s definition changed, will be restarted", c.Name)})
				a.Start = append(a.Start, start{Container: c, RestartCount: last.RestartCount + 1})
				continue
			}
			if r, restart := resizeOf(c, last, actuated); restart {
				a.Kill = append(a.Kill, resizeKill(c, last))
				a.Start = append(a.Start, start{Container: c, RestartCount: last.RestartCount + 1})
				continue
			} else if r != nil {
				a.Resize = append(a.Resize, *r)
			}
			running++
		case last.State == cri.StateUnknown:
			running++ // leave it alone until the runtime knows
		case shouldRestart(pod, last):
			if inBackOff(c, last) {
				a.BackOff = append(a.BackOff, c)
				continue
			}
			a.Start = append(a.Start, start{Container: c, RestartCount: last.RestartCount + 1})
		}
	}
	if running == 0 && len(a.Start) == 0 && len(a.BackOff) == 0 {
		a.KillPod = true
	}
}

// resizeOf compares running container c's allocated CPU and memory (requests and
// limits) with what it was given, as upstream's computePodResizeAction: nothing changed
// -> nil; a changed resource whose resizePolicy is RestartContainer -> restart; else an
// in-place resize (the policy's default is NotRequired).
func resizeOf(c *v1.Container, last *cri.Container, actuated actuatedFunc) (r *resize, restart bool) {
	if actuated == nil {
		return nil, false
	}
	cur, ok := actuated(c.Name)
	if !ok {
		return nil, false
	}
	changed := map[v1.ResourceName]bool{}
	for _, name := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory} {
		for _, pair := range [][2]v1.ResourceList{{c.Resources.Requests, cur.Requests}, {c.Resources.Limits, cur.Limits}} {
			want, have := pair[0][name], pair[1][name]
			if want.Cmp(have) != 0 {
				changed[name] = true
			}
		}
	}
	if len(changed) == 0 {
		return nil, false
	}
	for _, p := range c.ResizePolicy {
		if changed[p.ResourceName] && p.RestartPolicy == v1.RestartContainer {
			return nil, true
		}
	}
	return &resize{Container: c, ID: last.ID, Desired: *c.Resources.DeepCopy(), Current: *cur.DeepCopy()}, false
}

// resizeKill is upstream's kill of a container whose resize needs a restart.
func resizeKill(c *v1.Container, last *cri.Container) kill {
	return kill{*last, fmt.Sprintf("Container %s resize requires restart", c.Name)}
}

// isSidecar reports a native sidecar: an init container with restartPolicy Always.
func isSidecar(c *v1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
}

// shouldRestart applies the pod's restartPolicy to a container instance that stopped.
func shouldRestart(pod *v1.Pod, last *cri.Container) bool {
	if last.State == cri.StateRunning {
		return false
	}
	switch pod.Spec.RestartPolicy {
	case v1.RestartPolicyNever:
		return last.State == cri.StateCreated // never started: start it
	case v1.RestartPolicyOnFailure:
		return last.State != cri.StateExited || last.ExitCode != 0
	}
	return true
}

// anythingToRun reports whether the pod, as the runtime has it, still has a container that
// its restartPolicy wants (re)started; if not, a dead sandbox is not replaced.
func anythingToRun(pod *v1.Pod, st *cri.PodState) bool {
	if len(st.Sandboxes) == 0 {
		return true
	}
	for i := range pod.Spec.InitContainers {
		if isSidecar(&pod.Spec.InitContainers[i]) {
			continue
		}
		last, _ := st.Latest(pod.Spec.InitContainers[i].Name)
		if last != nil && last.State == cri.StateExited && last.ExitCode != 0 && pod.Spec.RestartPolicy == v1.RestartPolicyNever {
			return false
		}
	}
	for i := range pod.Spec.Containers {
		last, _ := st.Latest(pod.Spec.Containers[i].Name)
		if last == nil || last.State == cri.StateRunning || shouldRestart(pod, last) {
			return true
		}
	}
	return false
}

// regularStartedIn reports whether any regular container has an instance in the sandbox.
func regularStartedIn(pod *v1.Pod, st *cri.PodState, sandboxID string) bool {
	for i := range pod.Spec.Containers {
		if latestIn(st, pod.Spec.Containers[i].Name, sandboxID) != nil {
			return true
		}
	}
	return false
}

func latestIn(st *cri.PodState, name, sandboxID string) *cri.Container {
	for i := range st.Containers {
		if c := &st.Containers[i]; c.Name == name && c.SandboxID == sandboxID {
			return c
		}
	}
	return nil
}

func nextRestartCount(st *cri.PodState, name string) int {
	if last, _ := st.Latest(name); last != nil {
		return last.RestartCount + 1
	}
	return 0
}
