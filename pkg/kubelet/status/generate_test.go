package status

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

func pod(policy v1.RestartPolicy, inits []string, containers ...string) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}, Spec: v1.PodSpec{RestartPolicy: policy}}
	for _, n := range inits {
		p.Spec.InitContainers = append(p.Spec.InitContainers, v1.Container{Name: n, Image: "img"})
	}
	for _, n := range containers {
		p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: n, Image: "img"})
	}
	return p
}

func inst(name string, state cri.ContainerState, exit int32, restarts int) cri.Container {
	return cri.Container{ID: fmt.Sprintf("%s%d", name, restarts), Name: name, SandboxID: "sb", State: state, ExitCode: exit, RestartCount: restarts,
		StartedAt: time.Unix(100, 0), FinishedAt: time.Unix(200, 0)}
}

// summary: Summary with each container's last termination reason.
func summaryWithLast(st v1.PodStatus) string { return summary(st, true) }

func TestGenerate(t *testing.T) {
	never, onFailure, always := v1.RestartPolicyNever, v1.RestartPolicyOnFailure, v1.RestartPolicyAlways
	ready := []cri.Sandbox{{ID: "sb", Ready: true, IPs: []string{"10.0.0.5"}}}
	stopped := []cri.Sandbox{{ID: "sb", Ready: false}}
	cases := []struct {
		name    string
		pod     *v1.Pod
		sbs     []cri.Sandbox
		cs      []cri.Container
		waiting map[string]Waiting
		want    string
	}{
		{"nothing yet", pod(always, nil, "a"), nil, nil, nil,
			"Pending | ContainersReady=False(ContainersNotReady) Initialized=True PodReadyToStartContainers=False(PodSandboxNotReady) PodScheduled=True Ready=False(ContainersNotReady) | a:waiting(ContainerCreating) r0"},
		{"init running", pod(always, []string{"i"}, "a"), ready, []cri.Container{inst("i", cri.StateRunning, 0, 0)}, nil,
			"Pending | ContainersReady=False(ContainersNotReady) Initialized=False(ContainersNotInitialized) PodReadyToStartContainers=True PodScheduled=True Ready=False(ContainersNotReady) | i:running r0 a:waiting(PodInitializing) r0"},
		{"running", pod(always, []string{"i"}, "a"), ready, []cri.Container{inst("i", cri.StateExited, 0, 0), inst("a", cri.StateRunning, 0, 0)}, nil,
			"Running | ContainersReady=True Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=True | i:terminated(Completed) r0 a:running r0"},
		{"succeeded", pod(never, nil, "a"), stopped, []cri.Container{inst("a", cri.StateExited, 0, 0)}, nil,
			"Succeeded | ContainersReady=False(PodCompleted) Initialized=True(PodCompleted) PodReadyToStartContainers=False(PodSandboxNotReady) PodScheduled=True Ready=False(PodCompleted) | a:terminated(Completed) r0"},
		{"failed", pod(never, nil, "a"), stopped, []cri.Container{inst("a", cri.StateExited, 2, 0)}, nil,
			"Failed | ContainersReady=False(PodFailed) Initialized=True PodReadyToStartContainers=False(PodSandboxNotReady) PodScheduled=True Ready=False(PodFailed) | a:terminated(Error) r0"},
		{"onfailure one failed one done", pod(onFailure, nil, "a", "b"), ready, []cri.Container{inst("a", cri.StateExited, 0, 0), inst("b", cri.StateExited, 1, 0)}, nil,
			"Running | ContainersReady=False(ContainersNotReady) Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=False(ContainersNotReady) | a:terminated(Completed) r0 b:terminated(Error) r0"},
		{"init failed never", pod(never, []string{"i"}, "a"), stopped, []cri.Container{inst("i", cri.StateExited, 1, 0)}, nil,
			"Failed | ContainersReady=False(PodFailed) Initialized=False(ContainersNotInitialized) PodReadyToStartContainers=False(PodSandboxNotReady) PodScheduled=True Ready=False(PodFailed) | i:terminated(Error) r0 a:waiting(PodInitializing) r0"},
		{"crash loop", pod(always, nil, "a"), ready, []cri.Container{inst("a", cri.StateExited, 1, 1), inst("a", cri.StateExited, 1, 0)},
			map[string]Waiting{"a": {Reason: "CrashLoopBackOff", Message: "back-off 10s"}},
			"Running | ContainersReady=False(ContainersNotReady) Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=False(ContainersNotReady) | a:waiting(CrashLoopBackOff)/last=Error r1"},
		{"restarted keeps lastState", pod(always, nil, "a"), ready, []cri.Container{inst("a", cri.StateRunning, 0, 1), inst("a", cri.StateExited, 137, 0)}, nil,
			"Running | ContainersReady=True Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=True | a:running/last=Error r1"},
		{"pull error waiting", pod(always, nil, "a"), ready, nil, map[string]Waiting{"a": {Reason: "ErrImagePull"}},
			"Pending | ContainersReady=False(ContainersNotReady) Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=False(ContainersNotReady) | a:waiting(ErrImagePull) r0"},
		{"oom", pod(never, nil, "a"), stopped, []cri.Container{func() cri.Container { c := inst("a", cri.StateExited, 137, 0); c.Reason = "OOMKilled"; return c }()}, nil,
			"Failed | ContainersReady=False(PodFailed) Initialized=True PodReadyToStartContainers=False(PodSandboxNotReady) PodScheduled=True Ready=False(PodFailed) | a:terminated(OOMKilled) r0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := Generate(Input{Pod: tc.pod, State: &cri.PodState{Sandboxes: tc.sbs, Containers: tc.cs}, Waiting: tc.waiting, HostIPs: []string{"10.0.0.1"}, Now: time.Unix(300, 0)})
			if got := summaryWithLast(st); got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestGenerateKeepsTransitionTimesAndOthersConditions(t *testing.T) {
	p := pod(v1.RestartPolicyAlways, nil, "a")
	p.Spec.ReadinessGates = []v1.PodReadinessGate{{ConditionType: "example.com/gate"}}
	state := &cri.PodState{Sandboxes: []cri.Sandbox{{ID: "sb", Ready: true, IPs: []string{"10.0.0.5"}}}, Containers: []cri.Container{inst("a", cri.StateRunning, 0, 0)}}
	first := Generate(Input{Pod: p, State: state, Now: time.Unix(1000, 0)})
	if c := findCondition(first.Conditions, v1.PodReady); c.Status != v1.ConditionFalse || c.Reason != "ReadinessGatesNotReady" {
		t.Fatalf("Ready before the gate: %+v", c)
	}
	if first.PodIP != "10.0.0.5" || first.HostIP != "10.0.0.1" && first.HostIP != "" {
		t.Errorf("IPs: pod %q host %q", first.PodIP, first.HostIP)
	}
	p.Status = first
	p.Status.Conditions = append(p.Status.Conditions, v1.PodCondition{Type: "example.com/gate", Status: v1.ConditionTrue})
	second := Generate(Input{Pod: p, State: state, Now: time.Unix(2000, 0)})
	ready := findCondition(second.Conditions, v1.PodReady)
	if ready.Status != v1.ConditionTrue || ready.LastTransitionTime.Unix() != 2000 {
		t.Errorf("Ready after the gate: %+v", ready)
	}
	if cr := findCondition(second.Conditions, v1.ContainersReady); cr.LastTransitionTime.Unix() != 1000 {
		t.Errorf("unchanged ContainersReady got a new transition time: %v", cr.LastTransitionTime)
	}
	if g := findCondition(second.Conditions, "example.com/gate"); g == nil || g.Status != v1.ConditionTrue {
		t.Errorf("the gate's own condition was not kept: %v", second.Conditions)
	}
	p.Status = second
	p.Status.Phase = v1.PodSucceeded
	if third := Generate(Input{Pod: p, State: state, Now: time.Unix(3000, 0)}); third.Phase != v1.PodSucceeded {
		t.Errorf("left a terminal phase: %s", third.Phase)
	}
}

// A native sidecar counts for Initialized only once started (its startup probe passed).
func TestGenerateSidecarInitializedOnceStarted(t *testing.T) {
	p := pod(v1.RestartPolicyAlways, []string{"side"}, "a")
	always := v1.ContainerRestartPolicyAlways
	p.Spec.InitContainers[0].RestartPolicy = &always
	state := &cri.PodState{Sandboxes: []cri.Sandbox{{ID: "sb", Ready: true}}, Containers: []cri.Container{inst("side", cri.StateRunning, 0, 0)}}
	for _, started := range []bool{false, true} {
		st := Generate(Input{Pod: p, State: state, Now: time.Unix(300, 0),
			Started: func(*v1.Container, string) bool { return started }})
		want := v1.ConditionFalse
		if started {
			want = v1.ConditionTrue
		}
		if c := findCondition(st.Conditions, v1.PodInitialized); c.Status != want {
			t.Errorf("sidecar started=%v: Initialized=%s, want %s", started, c.Status, want)
		}
	}
}

// ephSummary renders the ephemeral container statuses: name, state, ready, started,
// restart count, image, imageID and container ID.
func ephSummary(st v1.PodStatus) string {
	var out []string
	for _, c := range st.EphemeralContainerStatuses {
		s := "none"
		switch {
		case c.State.Running != nil:
			s = "running"
		case c.State.Terminated != nil:
			s = fmt.Sprintf("terminated(%s,%d)", c.State.Terminated.Reason, c.State.Terminated.ExitCode)
		case c.State.Waiting != nil:
			s = "waiting(" + c.State.Waiting.Reason + ":" + c.State.Waiting.Message + ")"
		}
		started := "nil"
		if c.Started != nil {
			started = fmt.Sprint(*c.Started)
		}
		out = append(out, fmt.Sprintf("%s:%s ready=%v started=%s r%d %s %s %s", c.Name, s, c.Ready, started, c.RestartCount, c.Image, c.ImageID, c.ContainerID))
	}
	return strings.Join(out, " ; ")
}

// Ephemeral containers get statuses of their own, as upstream's
// convertToAPIContainerStatuses: sorted by name, never ready nor started, restart count 0,
// waiting with the start's failure reason; they change neither phase nor conditions.
func TestGenerateEphemeral(t *testing.T) {
	always := v1.RestartPolicyAlways
	ready := []cri.Sandbox{{ID: "sb", Ready: true, IPs: []string{"10.0.0.5"}}}
	withEph := func(p *v1.Pod, names ...string) *v1.Pod {
		for _, n := range names {
			p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, v1.EphemeralContainer{
				EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: n, Image: "busybox:1.35"}, TargetContainerName: "a"})
		}
		return p
	}
	eph := func(name string, state cri.ContainerState, exit int32) cri.Container {
		c := inst(name, state, exit, 0)
		c.Image, c.ImageRef = "docker.io/library/busybox:1.35", "sha256:bb"
		return c
	}
	oldTerminated := []v1.ContainerStatus{{Name: "dbg", Image: "busybox:1.35", ContainerID: "containerd://gone",
		State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", ContainerID: "containerd://gone"}}}}
	cases := []struct {
		name    string
		pod     *v1.Pod
		cs      []cri.Container
		waiting map[string]Waiting
		old     []v1.ContainerStatus
		want    string
	}{
		{"none", pod(always, nil, "a"), []cri.Container{inst("a", cri.StateRunning, 0, 0)}, nil, nil, ""},
		{"not created yet", withEph(pod(always, nil, "a"), "dbg"), []cri.Container{inst("a", cri.StateRunning, 0, 0)}, nil, nil,
			"dbg:waiting(ContainerCreating:) ready=false started=nil r0 busybox:1.35  "},
		{"pod with init containers: PodInitializing, as upstream", withEph(pod(always, []string{"i"}, "a"), "dbg"),
			[]cri.Container{inst("i", cri.StateExited, 0, 0), inst("a", cri.StateRunning, 0, 0)}, nil, nil,
			"dbg:waiting(PodInitializing:) ready=false started=nil r0 busybox:1.35  "},
		{"running", withEph(pod(always, nil, "a"), "dbg"), []cri.Container{inst("a", cri.StateRunning, 0, 0), eph("dbg", cri.StateRunning, 0)}, nil, nil,
			"dbg:running ready=false started=nil r0 busybox:1.35 sha256:bb containerd://dbg0"},
		{"terminated", withEph(pod(always, nil, "a"), "dbg"), []cri.Container{inst("a", cri.StateRunning, 0, 0), eph("dbg", cri.StateExited, 0)}, nil, nil,
			"dbg:terminated(Completed,0) ready=false started=nil r0 busybox:1.35 sha256:bb containerd://dbg0"},
		{"failed", withEph(pod(always, nil, "a"), "dbg"), []cri.Container{inst("a", cri.StateRunning, 0, 0), eph("dbg", cri.StateExited, 3)}, nil, nil,
			"dbg:terminated(Error,3) ready=false started=nil r0 busybox:1.35 sha256:bb containerd://dbg0"},
		{"target missing", withEph(pod(always, nil, "a", "b"), "dbg"), []cri.Container{inst("a", cri.StateRunning, 0, 0)},
			map[string]Waiting{"dbg": {Reason: "CreateContainerConfigError", Message: "unable to find target container b"}}, nil,
			"dbg:waiting(CreateContainerConfigError:unable to find target container b) ready=false started=nil r0 busybox:1.35  "},
		{"gone from the runtime: terminated kept", withEph(pod(always, nil, "a"), "dbg"), []cri.Container{inst("a", cri.StateRunning, 0, 0)}, nil, oldTerminated,
			"dbg:terminated(Completed,0) ready=false started=nil r0 busybox:1.35  containerd://gone"},
		{"sorted by name", withEph(pod(always, nil, "a"), "zz", "aa"), []cri.Container{inst("a", cri.StateRunning, 0, 0), eph("zz", cri.StateRunning, 0)}, nil, nil,
			"aa:waiting(ContainerCreating:) ready=false started=nil r0 busybox:1.35   ; zz:running ready=false started=nil r0 busybox:1.35 sha256:bb containerd://zz0"},
	}
	yes := func(*v1.Container, string) bool { return true }
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.pod.Status.EphemeralContainerStatuses = tc.old
			in := Input{Pod: tc.pod, State: &cri.PodState{Sandboxes: ready, Containers: tc.cs}, Waiting: tc.waiting, Now: time.Unix(300, 0), Started: yes, Ready: yes,
				RuntimeName: "containerd"}
			st := Generate(in)
			if got := ephSummary(st); got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
			// The rest of the status is what it would be without ephemeral containers.
			plain := tc.pod.DeepCopy()
			plain.Spec.EphemeralContainers = nil
			in.Pod = plain
			if got, want := summaryWithLast(st), summaryWithLast(Generate(in)); got != want {
				t.Errorf("ephemeral containers changed the pod's status:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// readiness renders each init and regular container's ready flag and the
// ContainersReady and Ready conditions with their messages.
func readiness(st v1.PodStatus) string {
	var out []string
	for _, list := range [][]v1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses} {
		for _, c := range list {
			out = append(out, fmt.Sprintf("%s=%v", c.Name, c.Ready))
		}
	}
	for _, t := range []v1.PodConditionType{v1.ContainersReady, v1.PodReady} {
		c := findCondition(st.Conditions, t)
		out = append(out, fmt.Sprintf("%s=%s(%s:%s)", t, c.Status, c.Reason, c.Message))
	}
	return strings.Join(out, " ")
}

// Init containers' ready flags and the readiness conditions, as upstream's prober manager
// (UpdatePodStatus) and GenerateContainersReadyCondition: a regular init container is
// ready only once it exited 0; a sidecar like a regular container (running, started,
// readiness probe passed) and it counts for ContainersReady.
func TestGenerateInitReadiness(t *testing.T) {
	always, never := v1.RestartPolicyAlways, v1.RestartPolicyNever
	sidecarPod := func(policy v1.RestartPolicy, inits []string, sidecars map[string]bool, cs ...string) *v1.Pod {
		p := pod(policy, inits, cs...)
		restart := v1.ContainerRestartPolicyAlways
		for i := range p.Spec.InitContainers {
			if sidecars[p.Spec.InitContainers[i].Name] {
				p.Spec.InitContainers[i].RestartPolicy = &restart
			}
		}
		return p
	}
	side := map[string]bool{"side": true}
	ready := []cri.Sandbox{{ID: "sb", Ready: true}}
	stopped := []cri.Sandbox{{ID: "sb"}}
	notReady := func(name string) func(*v1.Container, string) bool {
		return func(c *v1.Container, _ string) bool { return c.Name != name }
	}
	cases := []struct {
		name    string
		pod     *v1.Pod
		sbs     []cri.Sandbox
		cs      []cri.Container
		waiting map[string]Waiting
		ready   func(*v1.Container, string) bool
		want    string
	}{
		{"init running: not ready", pod(always, []string{"i"}, "a"), ready, []cri.Container{inst("i", cri.StateRunning, 0, 0)}, nil, nil,
			"i=false a=false ContainersReady=False(ContainersNotReady:containers with unready status: [a]) Ready=False(ContainersNotReady:containers with unready status: [a])"},
		{"init completed: ready", pod(always, []string{"i", "j"}, "a"), ready,
			[]cri.Container{inst("i", cri.StateExited, 0, 0), inst("j", cri.StateExited, 0, 0), inst("a", cri.StateRunning, 0, 0)}, nil, nil,
			"i=true j=true a=true ContainersReady=True(:) Ready=True(:)"},
		{"init failed: not ready", pod(never, []string{"i"}, "a"), stopped, []cri.Container{inst("i", cri.StateExited, 1, 0)}, nil, nil,
			"i=false a=false ContainersReady=False(PodFailed:) Ready=False(PodFailed:)"},
		{"init failed, backing off: not ready", pod(always, []string{"i"}, "a"), ready,
			[]cri.Container{inst("i", cri.StateExited, 1, 1), inst("i", cri.StateExited, 1, 0)},
			map[string]Waiting{"i": {Reason: "CrashLoopBackOff"}}, nil,
			"i=false a=false ContainersReady=False(ContainersNotReady:containers with unready status: [a]) Ready=False(ContainersNotReady:containers with unready status: [a])"},
		{"completed pod keeps init ready", pod(never, []string{"i"}, "a"), stopped,
			[]cri.Container{inst("i", cri.StateExited, 0, 0), inst("a", cri.StateExited, 0, 0)}, nil, nil,
			"i=true a=false ContainersReady=False(PodCompleted:) Ready=False(PodCompleted:)"},
		{"sidecar running and ready", sidecarPod(always, []string{"i", "side"}, side, "a"), ready,
			[]cri.Container{inst("i", cri.StateExited, 0, 0), inst("side", cri.StateRunning, 0, 0), inst("a", cri.StateRunning, 0, 0)}, nil, nil,
			"i=true side=true a=true ContainersReady=True(:) Ready=True(:)"},
		{"sidecar not ready holds ContainersReady", sidecarPod(always, []string{"side"}, side, "a", "b"), ready,
			[]cri.Container{inst("side", cri.StateRunning, 0, 0), inst("a", cri.StateRunning, 0, 0), inst("b", cri.StateRunning, 0, 0)}, nil, notReady("side"),
			"side=false a=true b=true ContainersReady=False(ContainersNotReady:containers with unready status: [side]) Ready=False(ContainersNotReady:containers with unready status: [side])"},
		{"sidecars listed before containers", sidecarPod(always, []string{"side"}, side, "a"), ready,
			[]cri.Container{inst("side", cri.StateRunning, 0, 0)}, nil, notReady("side"),
			"side=false a=false ContainersReady=False(ContainersNotReady:containers with unready status: [side a]) Ready=False(ContainersNotReady:containers with unready status: [side a])"},
		{"sidecar exited 0 is not ready", sidecarPod(never, []string{"side"}, side, "a"), stopped,
			[]cri.Container{inst("side", cri.StateExited, 0, 0), inst("a", cri.StateExited, 0, 0)}, nil, nil,
			"side=false a=false ContainersReady=False(PodCompleted:) Ready=False(PodCompleted:)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := Input{Pod: tc.pod, State: &cri.PodState{Sandboxes: tc.sbs, Containers: tc.cs}, Waiting: tc.waiting, Now: time.Unix(300, 0), Ready: tc.ready}
			if got := readiness(Generate(in)); got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// Every readiness gate not True is named in Ready's message, as upstream joins them.
func TestGenerateReadinessGatesMessage(t *testing.T) {
	p := pod(v1.RestartPolicyAlways, nil, "a")
	p.Spec.ReadinessGates = []v1.PodReadinessGate{{ConditionType: "x/missing"}, {ConditionType: "x/false"}, {ConditionType: "x/true"}}
	p.Status.Conditions = []v1.PodCondition{{Type: "x/false", Status: v1.ConditionFalse}, {Type: "x/true", Status: v1.ConditionTrue}}
	state := &cri.PodState{Sandboxes: []cri.Sandbox{{ID: "sb", Ready: true}}, Containers: []cri.Container{inst("a", cri.StateRunning, 0, 0)}}
	c := findCondition(Generate(Input{Pod: p, State: state, Now: time.Unix(300, 0)}).Conditions, v1.PodReady)
	want := `corresponding condition of pod readiness gate "x/missing" does not exist., the status of pod readiness gate "x/false" is not "True", but False`
	if c.Status != v1.ConditionFalse || c.Reason != "ReadinessGatesNotReady" || c.Message != want {
		t.Errorf("Ready: %+v", c)
	}
}

// TestGenerateTerminating: a pod being deleted whose containers stopped is Succeeded or
// Failed whatever its restartPolicy (upstream's podIsTerminal), except a static pod; the
// last pod addresses stay while no sandbox is ready.
func TestGenerateTerminating(t *testing.T) {
	always := v1.RestartPolicyAlways
	stopped := []cri.Sandbox{{ID: "sb", Ready: false}}
	static := pod(always, nil, "a")
	static.Annotations = map[string]string{annotationConfigSource: "file"}
	cases := []struct {
		name     string
		pod      *v1.Pod
		cs       []cri.Container
		terminal bool
		want     v1.PodPhase
	}{
		{"deleted, exit 0", pod(always, nil, "a"), []cri.Container{inst("a", cri.StateExited, 0, 0)}, true, v1.PodSucceeded},
		{"deleted, killed", pod(always, nil, "a", "b"), []cri.Container{inst("a", cri.StateExited, 0, 0), inst("b", cri.StateExited, 137, 0)}, true, v1.PodFailed},
		{"deleted, one still running", pod(always, nil, "a", "b"), []cri.Container{inst("a", cri.StateExited, 0, 0), inst("b", cri.StateRunning, 0, 0)}, true, v1.PodRunning},
		{"not deleted, restarts", pod(always, nil, "a"), []cri.Container{inst("a", cri.StateExited, 0, 0)}, false, v1.PodRunning},
		{"static pod deleted", static, []cri.Container{inst("a", cri.StateExited, 0, 0)}, true, v1.PodRunning},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.pod.Status.PodIP, tc.pod.Status.PodIPs = "10.0.0.5", []v1.PodIP{{IP: "10.0.0.5"}}
			st := Generate(Input{Pod: tc.pod, State: &cri.PodState{Sandboxes: stopped, Containers: tc.cs}, Terminal: tc.terminal, Now: time.Unix(300, 0)})
			if st.Phase != tc.want {
				t.Errorf("phase %s, want %s", st.Phase, tc.want)
			}
			if st.PodIP != "10.0.0.5" || len(st.PodIPs) != 1 {
				t.Errorf("pod IPs %q %v, want the last known kept", st.PodIP, st.PodIPs)
			}
		})
	}
}

// TestGenerateDeadlineExceeded: a pod past its deadline is Failed with upstream's reason,
// and its conditions say PodFailed, not ContainersNotReady.
func TestGenerateDeadlineExceeded(t *testing.T) {
	ready := []cri.Sandbox{{ID: "sb", Ready: true, IPs: []string{"10.0.0.5"}}}
	st := Generate(Input{Pod: pod(v1.RestartPolicyAlways, nil, "a"), State: &cri.PodState{Sandboxes: ready,
		Containers: []cri.Container{inst("a", cri.StateExited, 137, 0)}}, DeadlineExceeded: true, Now: time.Unix(300, 0)})
	if st.Phase != v1.PodFailed || st.Reason != "DeadlineExceeded" || st.Message != "Pod was active on the node longer than the specified deadline" {
		t.Errorf("phase %s reason %q message %q", st.Phase, st.Reason, st.Message)
	}
	for _, c := range st.Conditions {
		if (c.Type == v1.PodReady || c.Type == v1.ContainersReady) && c.Reason != "PodFailed" {
			t.Errorf("%s reason %q, want PodFailed", c.Type, c.Reason)
		}
	}
}

// TestGenerateEvicted: an evicted pod gets its DisruptionTarget condition at once, but
// turns Failed (reason Evicted) only once no container runs, as upstream's status manager
// holds a terminal phase back.
func TestGenerateEvicted(t *testing.T) {
	ready := []cri.Sandbox{{ID: "sb", Ready: true, IPs: []string{"10.0.0.5"}}}
	msg := "The node was low on resource: memory. "
	ev := &Eviction{Message: msg, Condition: &v1.PodCondition{Type: v1.DisruptionTarget, Status: v1.ConditionTrue,
		Reason: v1.PodReasonTerminationByKubelet, Message: msg}}
	p := pod(v1.RestartPolicyAlways, nil, "a")
	st := Generate(Input{Pod: p, State: &cri.PodState{Sandboxes: ready, Containers: []cri.Container{inst("a", cri.StateRunning, 0, 0)}},
		Evicted: ev, Now: time.Unix(300, 0)})
	if st.Phase != v1.PodRunning || st.Reason != "" {
		t.Errorf("while running: phase %s reason %q", st.Phase, st.Reason)
	}
	dt := findCondition(st.Conditions, v1.DisruptionTarget)
	if dt == nil || dt.Message != msg || !dt.LastTransitionTime.Time.Equal(time.Unix(300, 0)) {
		t.Fatalf("DisruptionTarget %+v", dt)
	}
	p.Status = st
	st = Generate(Input{Pod: p, State: &cri.PodState{Sandboxes: ready, Containers: []cri.Container{inst("a", cri.StateExited, 137, 0)}},
		Evicted: ev, Now: time.Unix(303, 0)})
	if st.Phase != v1.PodFailed || st.Reason != "Evicted" || st.Message != msg {
		t.Errorf("stopped: phase %s reason %q message %q", st.Phase, st.Reason, st.Message)
	}
	// Kept from the previous status (first, as upstream lists conditions others share).
	if dt := st.Conditions[0]; dt.Type != v1.DisruptionTarget || !dt.LastTransitionTime.Time.Equal(time.Unix(300, 0)) {
		t.Errorf("conditions %+v", st.Conditions)
	}
}

// TestGenerateVolumeMountsAndStartError: container statuses list the volume mounts (a
// read-only one as not recursively read-only), also while waiting; an instance that never
// started reports the epoch as startedAt, as upstream converts the runtime's 0.
func TestGenerateVolumeMountsAndStartError(t *testing.T) {
	p := pod(v1.RestartPolicyNever, nil, "a")
	p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "v", MountPath: "/v"}, {Name: "r", MountPath: "/r", ReadOnly: true}}
	st := Generate(Input{Pod: p, State: &cri.PodState{}, Now: time.Unix(300, 0)})
	vm := st.ContainerStatuses[0].VolumeMounts
	if len(vm) != 2 || vm[0].Name != "v" || vm[0].RecursiveReadOnly != nil || !vm[1].ReadOnly || vm[1].RecursiveReadOnly == nil || *vm[1].RecursiveReadOnly != v1.RecursiveReadOnlyDisabled {
		t.Errorf("volume mounts %+v", vm)
	}
	c := inst("a", cri.StateExited, 128, 0)
	c.StartedAt, c.Reason = time.Time{}, "StartError"
	st = Generate(Input{Pod: p, State: &cri.PodState{Containers: []cri.Container{c}}, Now: time.Unix(300, 0)})
	if term := st.ContainerStatuses[0].State.Terminated; term == nil || !term.StartedAt.Time.Equal(time.Unix(0, 0)) {
		t.Errorf("terminated %+v, want startedAt at the epoch", term)
	}
}

// Container IDs carry the runtime's name from its Version answer, whatever the runtime.
func TestGenerateContainerIDRuntimeName(t *testing.T) {
	ready := []cri.Sandbox{{ID: "sb", Ready: true}}
	restarted := []cri.Container{inst("a", cri.StateRunning, 0, 1), inst("a", cri.StateExited, 1, 0), inst("b", cri.StateExited, 0, 0)}
	for _, tc := range []struct{ runtime, want string }{
		{"containerd", "a=containerd://a1 last=containerd://a0 b=containerd://b0 terminated=containerd://b0"},
		{"cri-o", "a=cri-o://a1 last=cri-o://a0 b=cri-o://b0 terminated=cri-o://b0"},
	} {
		t.Run(tc.runtime, func(t *testing.T) {
			st := Generate(Input{Pod: pod(v1.RestartPolicyNever, nil, "a", "b"), State: &cri.PodState{Sandboxes: ready, Containers: restarted},
				Now: time.Unix(300, 0), RuntimeName: tc.runtime})
			a, b := st.ContainerStatuses[0], st.ContainerStatuses[1]
			got := fmt.Sprintf("a=%s last=%s b=%s terminated=%s", a.ContainerID, a.LastTerminationState.Terminated.ContainerID,
				b.ContainerID, b.State.Terminated.ContainerID)
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestGenerateContainerUser: the user the runtime reports for a container's latest
// instance is shown as upstream shows it; none reported (containerd 1.6) leaves it unset.
func TestGenerateContainerUser(t *testing.T) {
	user := &v1.ContainerUser{Linux: &v1.LinuxContainerUser{UID: 1000, GID: 3000, SupplementalGroups: []int64{3000, 4000}}}
	running := inst("a", cri.StateRunning, 0, 1)
	running.User = user
	exited := inst("a", cri.StateExited, 1, 0)
	for _, tc := range []struct {
		name string
		cs   []cri.Container
		want *v1.ContainerUser
	}{
		{"reported", []cri.Container{running, exited}, user},
		{"not reported", []cri.Container{exited}, nil},
		{"no instance", nil, nil},
	} {
		st := Generate(Input{Pod: pod(v1.RestartPolicyAlways, nil, "a"), State: &cri.PodState{Containers: tc.cs}, Now: time.Unix(300, 0)})
		if got := st.ContainerStatuses[0].User; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: user %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestGenerateResizeConditions: the resize conditions the allocation reports come last,
// as given (their own generation); old ones the kubelet no longer reports go; a finished
// pod reports none.
func TestGenerateResizeConditions(t *testing.T) {
	p := pod(v1.RestartPolicyAlways, nil, "a")
	p.Generation = 3
	p.Status.Conditions = []v1.PodCondition{{Type: v1.PodResizeInProgress, Status: v1.ConditionTrue, ObservedGeneration: 1}}
	state := &cri.PodState{Sandboxes: []cri.Sandbox{{ID: "sb", Ready: true}}, Containers: []cri.Container{inst("a", cri.StateRunning, 0, 0)}}
	pending := v1.PodCondition{Type: v1.PodResizePending, Status: v1.ConditionTrue, Reason: v1.PodReasonDeferred, Message: "no room", ObservedGeneration: 2}
	st := Generate(Input{Pod: p, State: state, Now: time.Unix(300, 0), ResizeConditions: []v1.PodCondition{pending}})
	last := st.Conditions[len(st.Conditions)-1]
	if last.Type != v1.PodResizePending || last.ObservedGeneration != 2 || last.Message != "no room" {
		t.Errorf("last condition %+v", last)
	}
	if findCondition(st.Conditions, v1.PodResizeInProgress) != nil {
		t.Error("an old PodResizeInProgress was kept")
	}
	p.Status.Phase = v1.PodFailed
	if st := Generate(Input{Pod: p, State: state, Now: time.Unix(300, 0), ResizeConditions: []v1.PodCondition{pending}}); findCondition(st.Conditions, v1.PodResizePending) != nil {
		t.Error("a finished pod reports a resize")
	}
}
