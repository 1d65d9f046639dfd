package podworker

import (
	"fmt"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

func spec(policy v1.RestartPolicy, inits []string, containers ...string) *v1.Pod {
	p := &v1.Pod{Spec: v1.PodSpec{RestartPolicy: policy}}
	for _, n := range inits {
		p.Spec.InitContainers = append(p.Spec.InitContainers, v1.Container{Name: n, Image: "img"})
	}
	for _, n := range containers {
		p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: n, Image: "img"})
	}
	return p
}

func ctr(name, sandbox string, state cri.ContainerState, exit int32, restarts int) cri.Container {
	return cri.Container{ID: fmt.Sprintf("%s-%d", name, restarts), Name: name, SandboxID: sandbox, State: state, ExitCode: exit, RestartCount: restarts}
}

var readySandbox = []cri.Sandbox{{ID: "sb", Attempt: 0, Ready: true}}
var deadSandbox = []cri.Sandbox{{ID: "sb", Attempt: 2, Ready: false}}

func names(starts []start) string {
	s := ""
	for _, st := range starts {
		s += fmt.Sprintf("%s/%d ", st.Container.Name, st.RestartCount)
	}
	return s
}

func TestComputeActions(t *testing.T) {
	never, onFailure, always := v1.RestartPolicyNever, v1.RestartPolicyOnFailure, v1.RestartPolicyAlways
	noBackOff := func(*v1.Container, *cri.Container) bool { return false }
	allBackOff := func(*v1.Container, *cri.Container) bool { return true }
	cases := []struct {
		name        string
		pod         *v1.Pod
		sandboxes   []cri.Sandbox
		containers  []cri.Container
		terminating bool
		backOff     inBackOffFunc
		want        string // KillPod CreateSandbox@attempt start list | backoff | failed
	}{
		{"new pod", spec(always, nil, "a", "b"), nil, nil, false, noBackOff, "kill=false create=true@0 start=a/0 b/0  backoff=0 failed=false"},
		{"new pod with init", spec(always, []string{"i1", "i2"}, "a"), nil, nil, false, noBackOff, "kill=false create=true@0 start=i1/0  backoff=0 failed=false"},
		{"init1 done", spec(always, []string{"i1", "i2"}, "a"), readySandbox, []cri.Container{ctr("i1", "sb", cri.StateExited, 0, 0)}, false, noBackOff, "kill=false create=false@0 start=i2/0  backoff=0 failed=false"},
		{"init running", spec(always, []string{"i1"}, "a"), readySandbox, []cri.Container{ctr("i1", "sb", cri.StateRunning, 0, 0)}, false, noBackOff, "kill=false create=false@0 start= backoff=0 failed=false"},
		{"init failed never", spec(never, []string{"i1"}, "a"), readySandbox, []cri.Container{ctr("i1", "sb", cri.StateExited, 1, 0)}, false, noBackOff, "kill=true create=false@0 start= backoff=0 failed=true"},
		{"init failed always restarts", spec(always, []string{"i1"}, "a"), readySandbox, []cri.Container{ctr("i1", "sb", cri.StateExited, 1, 0)}, false, noBackOff, "kill=false create=false@0 start=i1/1  backoff=0 failed=false"},
		{"init failed in back-off", spec(onFailure, []string{"i1"}, "a"), readySandbox, []cri.Container{ctr("i1", "sb", cri.StateExited, 1, 0)}, false, allBackOff, "kill=false create=false@0 start= backoff=1 failed=false"},
		{"inits done start containers", spec(always, []string{"i1"}, "a", "b"), readySandbox, []cri.Container{ctr("i1", "sb", cri.StateExited, 0, 0)}, false, noBackOff, "kill=false create=false@0 start=a/0 b/0  backoff=0 failed=false"},
		{"crash always restarts", spec(always, nil, "a"), readySandbox, []cri.Container{ctr("a", "sb", cri.StateExited, 1, 0)}, false, noBackOff, "kill=false create=false@0 start=a/1  backoff=0 failed=false"},
		{"exit 0 always restarts", spec(always, nil, "a"), readySandbox, []cri.Container{ctr("a", "sb", cri.StateExited, 0, 3)}, false, noBackOff, "kill=false create=false@0 start=a/4  backoff=0 failed=false"},
		{"crash in back-off", spec(always, nil, "a"), readySandbox, []cri.Container{ctr("a", "sb", cri.StateExited, 1, 1)}, false, allBackOff, "kill=false create=false@0 start= backoff=1 failed=false"},
		{"onfailure exit 0 done", spec(onFailure, nil, "a"), readySandbox, []cri.Container{ctr("a", "sb", cri.StateExited, 0, 0)}, false, noBackOff, "kill=true create=false@0 start= backoff=0 failed=false"},
		{"onfailure exit 1 restarts", spec(onFailure, nil, "a"), readySandbox, []cri.Container{ctr("a", "sb", cri.StateExited, 1, 0)}, false, noBackOff, "kill=false create=false@0 start=a/1  backoff=0 failed=false"},
		{"never exit 3 done", spec(never, nil, "a"), readySandbox, []cri.Container{ctr("a", "sb", cri.StateExited, 3, 0)}, false, noBackOff, "kill=true create=false@0 start= backoff=0 failed=false"},
		{"never one still running", spec(never, nil, "a", "b"), readySandbox, []cri.Container{ctr("a", "sb", cri.StateExited, 3, 0), ctr("b", "sb", cri.StateRunning, 0, 0)}, false, noBackOff, "kill=false create=false@0 start= backoff=0 failed=false"},
		{"dead sandbox recreated", spec(always, nil, "a"), deadSandbox, []cri.Container{ctr("a", "sb", cri.StateExited, 137, 2)}, false, noBackOff, "kill=true create=true@3 start=a/3  backoff=0 failed=false"},
		{"dead sandbox, never, all done", spec(never, nil, "a"), deadSandbox, []cri.Container{ctr("a", "sb", cri.StateExited, 0, 0)}, false, noBackOff, "kill=true create=false@0 start= backoff=0 failed=false"},
		{"dead sandbox reruns inits", spec(always, []string{"i1"}, "a"), deadSandbox, []cri.Container{ctr("i1", "sb", cri.StateExited, 0, 0), ctr("a", "sb", cri.StateExited, 137, 0)}, false, noBackOff, "kill=true create=true@3 start=i1/1  backoff=0 failed=false"},
		{"terminating kills", spec(always, nil, "a"), readySandbox, []cri.Container{ctr("a", "sb", cri.StateRunning, 0, 0)}, true, noBackOff, "kill=true create=false@0 start= backoff=0 failed=false"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := computeActions(tc.pod, &cri.PodState{Sandboxes: tc.sandboxes, Containers: tc.containers}, tc.terminating, tc.backOff, nil, nil)
			got := fmt.Sprintf("kill=%v create=%v@%d start=%s backoff=%d failed=%v", a.KillPod, a.CreateSandbox, a.SandboxAttempt, names(a.Start), len(a.BackOff), a.PodFailed)
			if got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestComputeActionsSpecChangeRestarts(t *testing.T) {
	pod := spec(v1.RestartPolicyAlways, nil, "a")
	c := ctr("a", "sb", cri.StateRunning, 0, 0)
	c.Hash = "stale"
	a := computeActions(pod, &cri.PodState{Sandboxes: readySandbox, Containers: []cri.Container{c}}, false, func(*v1.Container, *cri.Container) bool { return false }, nil, nil)
	if len(a.Kill) != 1 || a.Kill[0].Container.ID != c.ID || names(a.Start) != "a/1 " {
		t.Errorf("changed spec: kill %v start %s", a.Kill, names(a.Start))
	}
	c.Hash = cri.ContainerHash(&pod.Spec.Containers[0])
	a = computeActions(pod, &cri.PodState{Sandboxes: readySandbox, Containers: []cri.Container{c}}, false, nil, nil, nil)
	if len(a.Kill) != 0 || len(a.Start) != 0 || a.KillPod {
		t.Errorf("unchanged running container touched: %+v", a)
	}
}

func TestComputeActionsSidecars(t *testing.T) {
	always := v1.ContainerRestartPolicyAlways
	pod := spec(v1.RestartPolicyNever, []string{"side", "init"}, "a")
	pod.Spec.InitContainers[0].RestartPolicy = &always
	noBackOff := func(*v1.Container, *cri.Container) bool { return false }
	run := func(cs ...cri.Container) string {
		a := computeActions(pod, &cri.PodState{Sandboxes: readySandbox, Containers: cs}, false, noBackOff, nil, nil)
		return fmt.Sprintf("kill=%v start=%s", a.KillPod, names(a.Start))
	}
	for _, tc := range []struct {
		name string
		cs   []cri.Container
		want string
	}{
		{"sidecar first", nil, "kill=false start=side/0 "},
		{"then the next init", []cri.Container{ctr("side", "sb", cri.StateRunning, 0, 0)}, "kill=false start=init/0 "},
		{"crashed sidecar restarts even under Never", []cri.Container{ctr("side", "sb", cri.StateExited, 1, 0)}, "kill=false start=side/1 "},
		{"regular done: pod done, sidecar goes too", []cri.Container{ctr("side", "sb", cri.StateRunning, 0, 0), ctr("init", "sb", cri.StateExited, 0, 0), ctr("a", "sb", cri.StateExited, 0, 0)}, "kill=true start="},
	} {
		if got := run(tc.cs...); got != tc.want {
			t.Errorf("%s: got %s want %s", tc.name, got, tc.want)
		}
	}
}

// A sidecar with a startup probe holds up the next init container (and the regular
// containers) until the probe passed, as upstream's computeInitContainerActions; without
// one, running is enough. Once the pod is initialized, a restarted sidecar's startup
// probe holds nothing up.
func TestComputeActionsSidecarStartupProbe(t *testing.T) {
	always := v1.ContainerRestartPolicyAlways
	probe := &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"true"}}}}
	pod := spec(v1.RestartPolicyAlways, []string{"probed", "plain", "init"}, "a", "b")
	pod.Spec.InitContainers[0].RestartPolicy = &always
	pod.Spec.InitContainers[0].StartupProbe = probe
	pod.Spec.InitContainers[1].RestartPolicy = &always
	noBackOff := func(*v1.Container, *cri.Container) bool { return false }
	// started: the instances (IDs) whose startup probe passed.
	startedOnly := func(ids ...string) startedFunc {
		return func(c *v1.Container, id string) bool {
			if c.StartupProbe == nil {
				return true
			}
			for _, s := range ids {
				if s == id {
					return true
				}
			}
			return false
		}
	}
	running := func(name string, restarts int) cri.Container { return ctr(name, "sb", cri.StateRunning, 0, restarts) }
	for _, tc := range []struct {
		name    string
		cs      []cri.Container
		started startedFunc
		want    string
	}{
		{"the probed sidecar first", nil, startedOnly(), "kill=false start=probed/0 "},
		{"running but not started: wait", []cri.Container{running("probed", 0)}, startedOnly(), "kill=false start="},
		{"started: the next sidecar", []cri.Container{running("probed", 0)}, startedOnly("probed-0"), "kill=false start=plain/0 "},
		{"a sidecar without a startup probe: running is enough", []cri.Container{running("probed", 0), running("plain", 0)}, startedOnly("probed-0"), "kill=false start=init/0 "},
		{"regular containers wait for the probe too", []cri.Container{running("probed", 0), running("plain", 0), ctr("init", "sb", cri.StateExited, 0, 0)}, startedOnly(), "kill=false start="},
		{"then start", []cri.Container{running("probed", 0), running("plain", 0), ctr("init", "sb", cri.StateExited, 0, 0)}, startedOnly("probed-0"), "kill=false start=a/0 b/0 "},
		{"only the running instance counts", []cri.Container{running("probed", 1), ctr("probed", "sb", cri.StateExited, 137, 0)}, startedOnly("probed-0"), "kill=false start="},
		{"a crashed probed sidecar restarts", []cri.Container{ctr("probed", "sb", cri.StateExited, 1, 0)}, startedOnly(), "kill=false start=probed/1 "},
		{"initialized: a restarted sidecar's probe holds nothing up",
			[]cri.Container{running("probed", 1), running("plain", 0), ctr("init", "sb", cri.StateExited, 0, 0), running("a", 0), ctr("b", "sb", cri.StateExited, 1, 0)},
			startedOnly(), "kill=false start=b/1 "},
		{"no probe results (probes off): running is enough", []cri.Container{running("probed", 0)}, nil, "kill=false start=plain/0 "},
	} {
		a := computeActions(pod, &cri.PodState{Sandboxes: readySandbox, Containers: tc.cs}, false, noBackOff, tc.started, nil)
		if got := fmt.Sprintf("kill=%v start=%s", a.KillPod, names(a.Start)); got != tc.want {
			t.Errorf("%s: got %s want %s", tc.name, got, tc.want)
		}
	}
}

// Ephemeral containers start once, into a ready sandbox, first (even while init
// containers run or fail), as upstream's computePodActions; never again whatever became of
// them, never into a sandbox to be made or killed.
func TestComputeActionsEphemeral(t *testing.T) {
	never, always := v1.RestartPolicyNever, v1.RestartPolicyAlways
	withEph := func(p *v1.Pod, names ...string) *v1.Pod {
		for _, n := range names {
			p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, v1.EphemeralContainer{
				EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: n, Image: "busybox"}, TargetContainerName: "a"})
		}
		return p
	}
	noBackOff := func(*v1.Container, *cri.Container) bool { return false }
	allBackOff := func(*v1.Container, *cri.Container) bool { return true }
	running := func(name string) cri.Container { return ctr(name, "sb", cri.StateRunning, 0, 0) }
	cases := []struct {
		name        string
		pod         *v1.Pod
		sandboxes   []cri.Sandbox
		cs          []cri.Container
		terminating bool
		backOff     inBackOffFunc
		want        string
	}{
		{"added to a running pod", withEph(spec(always, nil, "a"), "dbg"), readySandbox, []cri.Container{running("a")}, false, noBackOff,
			"kill=false create=false start=dbg/0 eph=dbg>a"},
		{"two, in spec order, before a restart", withEph(spec(always, nil, "a"), "d1", "d2"), readySandbox, []cri.Container{ctr("a", "sb", cri.StateExited, 1, 0)}, false, noBackOff,
			"kill=false create=false start=d1/0 d2/0 a/1 eph=d1>a d2>a"},
		{"running: left alone", withEph(spec(always, nil, "a"), "dbg"), readySandbox, []cri.Container{running("a"), running("dbg")}, false, noBackOff,
			"kill=false create=false start= eph="},
		{"exited: never restarted", withEph(spec(always, nil, "a"), "dbg"), readySandbox, []cri.Container{running("a"), ctr("dbg", "sb", cri.StateExited, 1, 0)}, false, noBackOff,
			"kill=false create=false start= eph="},
		{"created but never started: not again", withEph(spec(always, nil, "a"), "dbg"), readySandbox, []cri.Container{running("a"), ctr("dbg", "sb", cri.StateCreated, 0, 0)}, false, noBackOff,
			"kill=false create=false start= eph="},
		{"while an init container runs", withEph(spec(always, []string{"i"}, "a"), "dbg"), readySandbox, []cri.Container{running("i")}, false, noBackOff,
			"kill=false create=false start=dbg/0 eph=dbg>a"},
		{"while an init container is in back-off", withEph(spec(always, []string{"i"}, "a"), "dbg"), readySandbox, []cri.Container{ctr("i", "sb", cri.StateExited, 1, 0)}, false, allBackOff,
			"kill=false create=false start=dbg/0 eph=dbg>a"},
		{"not when an init container failed the pod", withEph(spec(never, []string{"i"}, "a"), "dbg"), readySandbox, []cri.Container{ctr("i", "sb", cri.StateExited, 1, 0)}, false, noBackOff,
			"kill=true create=false start= eph="},
		{"not into a sandbox to be made", withEph(spec(always, nil, "a"), "dbg"), deadSandbox, []cri.Container{ctr("a", "sb", cri.StateExited, 137, 0)}, false, noBackOff,
			"kill=true create=true start=a/1 eph="},
		{"not when the pod's containers are done", withEph(spec(never, nil, "a"), "dbg"), readySandbox, []cri.Container{ctr("a", "sb", cri.StateExited, 0, 0)}, false, noBackOff,
			"kill=true create=false start= eph="},
		{"not when terminating", withEph(spec(always, nil, "a"), "dbg"), readySandbox, []cri.Container{running("a")}, true, noBackOff,
			"kill=true create=false start= eph="},
		{"an instance in an old sandbox counts", withEph(spec(always, nil, "a"), "dbg"), readySandbox, []cri.Container{running("a"), ctr("dbg", "old", cri.StateExited, 137, 0)}, false, noBackOff,
			"kill=false create=false start= eph="},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := computeActions(tc.pod, &cri.PodState{Sandboxes: tc.sandboxes, Containers: tc.cs}, tc.terminating, tc.backOff, nil, nil)
			eph := ""
			for _, s := range a.Start {
				if s.Ephemeral {
					eph += s.Container.Name + ">" + s.Target + " "
				}
			}
			got := fmt.Sprintf("kill=%v create=%v start=%s eph=%s", a.KillPod, a.CreateSandbox, strings.TrimSpace(names(a.Start)), strings.TrimSpace(eph))
			if got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}
