package e2e

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// Predicates over a pod for the steps of transitionCases.

type podPred = func(*v1.Pod) bool

func all(ps ...podPred) podPred {
	return func(p *v1.Pod) bool {
		for _, f := range ps {
			if !f(p) {
				return false
			}
		}
		return true
	}
}

func phaseIs(ph v1.PodPhase) podPred { return func(p *v1.Pod) bool { return p.Status.Phase == ph } }

func condIs(t v1.PodConditionType, s v1.ConditionStatus) podPred {
	return func(p *v1.Pod) bool { c := podCondition(p, t); return c != nil && c.Status == s }
}

// settledTerminal: the pod's phase is ph and its sandbox is gone, as both agents end a
// finished pod.
func settledTerminal(ph v1.PodPhase) podPred {
	return all(phaseIs(ph), condIs(v1.PodReadyToStartContainers, v1.ConditionFalse))
}

func waitingIn(name, reason string) podPred {
	return func(p *v1.Pod) bool {
		cs := containerStatus(p, name)
		return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == reason
	}
}

func runningC(name string) podPred {
	return func(p *v1.Pod) bool { cs := containerStatus(p, name); return cs != nil && cs.State.Running != nil }
}

func readyC(name string, ready bool) podPred {
	return func(p *v1.Pod) bool {
		cs := containerStatus(p, name)
		return cs != nil && cs.State.Running != nil && cs.Ready == ready && cs.Started != nil && *cs.Started
	}
}

func terminatedIn(name, reason string) podPred {
	return func(p *v1.Pod) bool {
		cs := containerStatus(p, name)
		return cs != nil && cs.State.Terminated != nil && cs.State.Terminated.Reason == reason
	}
}

func restartsAtLeast(name string, n int32) podPred {
	return func(p *v1.Pod) bool { cs := containerStatus(p, name); return cs != nil && cs.RestartCount >= n }
}

// crashLooping: the container waits out its back-off after n restarts.
func crashLooping(name string, n int32) podPred {
	return all(waitingIn(name, "CrashLoopBackOff"), restartsAtLeast(name, n))
}

func generationSeen(p *v1.Pod) bool { return p.Status.ObservedGeneration == p.Generation }

var podReadyNow = all(phaseIs(v1.PodRunning), condIs(v1.PodReady, v1.ConditionTrue))

// Pod builders.

func bb(node string, policy v1.RestartPolicy, cmd ...string) *v1.Pod {
	p := newPod(node, cmd...)
	p.Spec.RestartPolicy = policy
	return p
}

func shPod(node string, policy v1.RestartPolicy, script string) *v1.Pod {
	return bb(node, policy, "sh", "-c", script)
}

func withInit(p *v1.Pod, cmd ...string) *v1.Pod {
	p.Spec.InitContainers = append(p.Spec.InitContainers, v1.Container{Name: "init", Image: testbed.BusyboxImage, ImagePullPolicy: v1.PullIfNotPresent, Command: cmd})
	return p
}

func withSidecar(p *v1.Pod, cmd ...string) *v1.Pod {
	always := v1.ContainerRestartPolicyAlways
	p.Spec.InitContainers = append(p.Spec.InitContainers, v1.Container{Name: "sidecar", Image: testbed.BusyboxImage, ImagePullPolicy: v1.PullIfNotPresent, Command: cmd, RestartPolicy: &always})
	return p
}

func withImage(p *v1.Pod, image string, policy v1.PullPolicy) *v1.Pod {
	p.Spec.Containers[0].Image, p.Spec.Containers[0].ImagePullPolicy = image, policy
	return p
}

func execProbe(period int32, cmd ...string) *v1.Probe {
	return &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: cmd}}, PeriodSeconds: period, FailureThreshold: 1}
}

func deletePod(grace int64) func(ctx context.Context, t *testing.T, p *v1.Pod) {
	return func(ctx context.Context, t *testing.T, p *v1.Pod) {
		if err := bed.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
			t.Errorf("delete: %v", err)
		}
	}
}

func deleting(p *v1.Pod) bool { return p.DeletionTimestamp != nil }

// knownDifferences are differences from upstream recorded in docs/differences.md, by case:
// status paths (dotted) left out of the comparison at every step, each with its reason.
var knownDifferences = map[string][]knownDifference{
	"oom-killed": {{"resources.limits", "upstream without pod cgroups (as the bed runs it) drops the pod-level limits it cannot read back once the pod has run; docs/differences.md"}},
}

func transitionCases() []transitionCase {
	cases := append(exitCases(), initCases()...)
	cases = append(cases, imageCases()...)
	cases = append(cases, configCases()...)
	cases = append(cases, probeAndHookCases()...)
	cases = append(cases, updateCases()...)
	return append(cases, admissionCases()...)
}

func exitCases() []transitionCase {
	never, onFailure, always := v1.RestartPolicyNever, v1.RestartPolicyOnFailure, v1.RestartPolicyAlways
	return []transitionCase{
		{"exit0-never", func(n string) *v1.Pod { return bb(n, never, "true") },
			[]step{{name: "succeeded", until: settledTerminal(v1.PodSucceeded)}}},
		{"exit1-never", func(n string) *v1.Pod { return bb(n, never, "false") },
			[]step{{name: "failed", until: settledTerminal(v1.PodFailed)}}},
		{"exit0-onfailure", func(n string) *v1.Pod { return bb(n, onFailure, "true") },
			[]step{{name: "succeeded", until: settledTerminal(v1.PodSucceeded)}}},
		{"exit1-onfailure", func(n string) *v1.Pod { return bb(n, onFailure, "false") },
			[]step{{name: "backoff", until: crashLooping("main", 1)}}},
		{"exit0-always", func(n string) *v1.Pod { return bb(n, always, "true") },
			[]step{{name: "backoff", until: crashLooping("main", 1)}}},
		{"exit3-always", func(n string) *v1.Pod { return shPod(n, always, "exit 3") },
			[]step{{name: "backoff", until: crashLooping("main", 1)}}},
		{"running-ready", func(n string) *v1.Pod { return bb(n, always, "sleep", "3600") },
			[]step{{name: "ready", until: podReadyNow}}},
		{"two-containers-one-exits", func(n string) *v1.Pod {
			p := bb(n, never, "sleep", "3600")
			p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: "quick", Image: testbed.BusyboxImage, ImagePullPolicy: v1.PullIfNotPresent, Command: []string{"true"}})
			return p
		}, []step{{name: "one-done", until: all(terminatedIn("quick", "Completed"), runningC("main"))}}},
		{"termination-message-file", func(n string) *v1.Pod {
			p := testAppPod(n, "exit", "--code=4", "--message=done")
			p.Spec.RestartPolicy = never
			return p
		}, []step{{name: "failed", until: settledTerminal(v1.PodFailed)}}},
		{"termination-message-fallback-logs", func(n string) *v1.Pod {
			p := shPod(n, never, "echo -n DONE; false")
			p.Spec.Containers[0].TerminationMessagePolicy = v1.TerminationMessageFallbackToLogsOnError
			return p
		}, []step{{name: "failed", until: settledTerminal(v1.PodFailed)}}},
		{"termination-message-nonroot-path", func(n string) *v1.Pod {
			p := shPod(n, never, "echo -n bye > /dev/custom-termination-log")
			p.Spec.Containers[0].TerminationMessagePath = "/dev/custom-termination-log"
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{RunAsUser: ptr(int64(1000))}
			return p
		}, []step{{name: "done", until: all(settledTerminal(v1.PodSucceeded))}}},
		{"oom-killed", func(n string) *v1.Pod {
			// dd itself must be the process the OOM killer ends (exec), so the exit is 137.
			// It starts after a second, once the API has seen the pod Running: upstream
			// reports a Running pod's resources from its cgroup, so the status it ends
			// with depends on whether the pod was ever Running.
			p := shPod(n, never, "sleep 1; exec dd if=/dev/zero of=/dev/shm/fill bs=1M count=60")
			p.Spec.Containers[0].Resources.Limits = v1.ResourceList{v1.ResourceMemory: resource.MustParse("24Mi")}
			return p
		}, []step{{name: "running", until: all(phaseIs(v1.PodRunning), runningC("main"))},
			{name: "oom", until: settledTerminal(v1.PodFailed)}}},
		{"active-deadline", func(n string) *v1.Pod {
			p := bb(n, always, "sleep", "3600")
			p.Spec.ActiveDeadlineSeconds = ptr(int64(3))
			return p
		}, []step{{name: "ready", until: podReadyNow}, {name: "deadline", until: settledTerminal(v1.PodFailed)}}},
		{"graceful-delete", func(n string) *v1.Pod { return bb(n, always, "sleep", "3600") },
			[]step{{name: "ready", until: podReadyNow, then: deletePod(2)},
				{name: "terminated", until: all(deleting, terminatedIn("main", "Error"))}}},
		{"forced-delete", func(n string) *v1.Pod { return bb(n, always, "sleep", "3600") },
			[]step{{name: "ready", until: podReadyNow, then: deletePod(0)}, {name: "gone", gone: true}}},
		{"graceful-delete-trap", func(n string) *v1.Pod {
			return shPod(n, always, "trap 'exit 0' TERM; while true; do sleep 0.1; done")
		}, []step{{name: "ready", until: podReadyNow, then: deletePod(5)},
			{name: "terminated", until: all(deleting, terminatedIn("main", "Completed"))}}},
	}
}

func initCases() []transitionCase {
	never, onFailure, always := v1.RestartPolicyNever, v1.RestartPolicyOnFailure, v1.RestartPolicyAlways
	return []transitionCase{
		{"init-fails-never", func(n string) *v1.Pod { return withInit(bb(n, never, "sleep", "3600"), "false") },
			[]step{{name: "failed", until: settledTerminal(v1.PodFailed)}}},
		{"init-fails-onfailure", func(n string) *v1.Pod { return withInit(bb(n, onFailure, "sleep", "3600"), "false") },
			[]step{{name: "backoff", until: crashLooping("init", 1)}}},
		{"init-fails-always", func(n string) *v1.Pod { return withInit(bb(n, always, "sleep", "3600"), "false") },
			[]step{{name: "backoff", until: crashLooping("init", 1)}}},
		{"init-then-run", func(n string) *v1.Pod { return withInit(bb(n, always, "sleep", "3600"), "true") },
			[]step{{name: "ready", until: podReadyNow}}},
		{"init-running", func(n string) *v1.Pod { return withInit(bb(n, always, "sleep", "3600"), "sleep", "3600") },
			[]step{{name: "initializing", until: runningC("init")}}},
		{"init-then-exit0-never", func(n string) *v1.Pod { return withInit(bb(n, never, "true"), "true") },
			[]step{{name: "succeeded", until: settledTerminal(v1.PodSucceeded)}}},
		{"sidecar-running", func(n string) *v1.Pod { return withSidecar(bb(n, always, "sleep", "3600"), "sleep", "3600") },
			[]step{{name: "ready", until: podReadyNow}}},
		{"sidecar-main-completes", func(n string) *v1.Pod { return withSidecar(bb(n, never, "true"), "sleep", "3600") },
			[]step{{name: "succeeded", until: settledTerminal(v1.PodSucceeded)}}},
		{"sidecar-crashes", func(n string) *v1.Pod { return withSidecar(bb(n, always, "sleep", "3600"), "false") },
			[]step{{name: "backoff", until: all(crashLooping("sidecar", 1), runningC("main"))}}},
		{"sidecar-startup-probe", func(n string) *v1.Pod {
			p := withSidecar(bb(n, always, "sleep", "3600"), "sh", "-c", "sleep 2; touch /tmp/up; sleep 3600")
			p.Spec.InitContainers[0].StartupProbe = execProbe(1, "cat", "/tmp/up")
			p.Spec.InitContainers[0].StartupProbe.FailureThreshold = 30
			return p
		}, []step{{name: "starting", until: all(runningC("sidecar"), waitingIn("main", "PodInitializing"))},
			{name: "ready", until: podReadyNow}}},
		{"sidecar-and-init-never-fails", func(n string) *v1.Pod {
			return withInit(withSidecar(bb(n, never, "true"), "sleep", "3600"), "false")
		}, []step{{name: "failed", until: settledTerminal(v1.PodFailed)}}},
	}
}

func imageCases() []transitionCase {
	always := v1.RestartPolicyAlways
	return []transitionCase{
		{"image-never-missing", func(n string) *v1.Pod {
			return withImage(bb(n, always, "true"), "docker.io/library/absent:1", v1.PullNever)
		}, []step{{name: "never-pull", until: waitingIn("main", "ErrImageNeverPull")}}},
		{"invalid-image-name", func(n string) *v1.Pod {
			return withImage(bb(n, always, "true"), "Not_A::Valid/Name", v1.PullIfNotPresent)
		}, []step{{name: "invalid", until: waitingIn("main", "InvalidImageName")}}},
		{"pull-missing-tag", func(n string) *v1.Pod {
			return withImage(bb(n, always, "true"), bed.Registry.Host+"/e2e/busybox:absent", v1.PullIfNotPresent)
		}, []step{{name: "pull-error", until: waitingIn("main", "ErrImagePull")},
			{name: "pull-backoff", until: waitingIn("main", "ImagePullBackOff")}}},
		{"pull-unreachable-registry", func(n string) *v1.Pod {
			return withImage(bb(n, always, "true"), "127.0.0.1:1/e2e/busybox:v1", v1.PullAlways)
		}, []step{{name: "pull-error", until: waitingIn("main", "ErrImagePull")},
			{name: "pull-backoff", until: waitingIn("main", "ImagePullBackOff")}}},
		{"pull-always-from-registry", func(n string) *v1.Pod {
			return withImage(bb(n, always, "sleep", "3600"), bed.Registry.Host+"/e2e/busybox:v1", v1.PullAlways)
		}, []step{{name: "ready", until: podReadyNow}}},
	}
}

func configCases() []transitionCase {
	always := v1.RestartPolicyAlways
	return []transitionCase{
		{"missing-configmap-env", func(n string) *v1.Pod {
			p := bb(n, always, "sleep", "3600")
			p.Spec.Containers[0].Env = []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{
				LocalObjectReference: v1.LocalObjectReference{Name: "tr-absent"}, Key: "k"}}}}
			return p
		}, []step{{name: "config-error", until: waitingIn("main", "CreateContainerConfigError")}}},
		{"missing-secret-env", func(n string) *v1.Pod {
			p := bb(n, always, "sleep", "3600")
			p.Spec.Containers[0].EnvFrom = []v1.EnvFromSource{{SecretRef: &v1.SecretEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "tr-absent"}}}}
			return p
		}, []step{{name: "config-error", until: waitingIn("main", "CreateContainerConfigError")}}},
		{"run-as-non-root-image-root", func(n string) *v1.Pod {
			p := bb(n, always, "sleep", "3600")
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{RunAsNonRoot: ptr(true)}
			return p
		}, []step{{name: "config-error", until: waitingIn("main", "CreateContainerConfigError")}}},
		{"missing-configmap-volume", func(n string) *v1.Pod {
			p := bb(n, always, "sleep", "3600")
			p.Spec.Volumes = []v1.Volume{{Name: "cfg", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "tr-absent"}}}}}
			p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "cfg", MountPath: "/cfg"}}
			return p
		}, []step{{name: "creating", until: all(waitingIn("main", "ContainerCreating"), condIs(v1.PodScheduled, v1.ConditionTrue), func(p *v1.Pod) bool { return p.Status.StartTime != nil })}}},
		{"missing-seccomp-profile", func(n string) *v1.Pod {
			p := bb(n, always, "sleep", "3600")
			p.Spec.Containers[0].SecurityContext = &v1.SecurityContext{SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeLocalhost, LocalhostProfile: ptr("tr-absent.json")}}
			return p
		}, []step{{name: "create-error", until: waitingIn("main", "CreateContainerError")}}},
		{"command-not-found", func(n string) *v1.Pod { return bb(n, always, "/no/such/binary") },
			[]step{{name: "backoff", until: crashLooping("main", 1)}}},
	}
}

func probeAndHookCases() []transitionCase {
	always := v1.RestartPolicyAlways
	return []transitionCase{
		{"readiness-fails", func(n string) *v1.Pod {
			p := bb(n, always, "sleep", "3600")
			p.Spec.Containers[0].ReadinessProbe = execProbe(1, "cat", "/tmp/absent")
			return p
		}, []step{{name: "not-ready", until: all(phaseIs(v1.PodRunning), readyC("main", false), condIs(v1.PodReadyToStartContainers, v1.ConditionTrue))}}},
		{"readiness-passes", func(n string) *v1.Pod {
			p := bb(n, always, "sleep", "3600")
			p.Spec.Containers[0].ReadinessProbe = execProbe(1, "true")
			return p
		}, []step{{name: "ready", until: podReadyNow}}},
		{"liveness-fails-once", func(n string) *v1.Pod {
			// The first instance fails its liveness probe; the second (it finds the mark
			// the first left in the emptyDir) passes, so the pod settles after one restart.
			p := shPod(n, always, "if [ -e /v/once ]; then touch /tmp/healthy; else touch /v/once; fi; exec sleep 3600")
			p.Spec.Volumes = []v1.Volume{{Name: "v", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
			p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "v", MountPath: "/v"}}
			p.Spec.Containers[0].LivenessProbe = execProbe(1, "cat", "/tmp/healthy")
			return p
		}, []step{{name: "restarted", until: all(restartsAtLeast("main", 1), readyC("main", true), podReadyNow)}}},
		{"startup-probe-fails-never", func(n string) *v1.Pod {
			p := bb(n, v1.RestartPolicyNever, "sleep", "3600")
			p.Spec.Containers[0].StartupProbe = execProbe(1, "cat", "/tmp/absent")
			return p
		}, []step{{name: "failed", until: settledTerminal(v1.PodFailed)}}},
		{"post-start-hook-fails", func(n string) *v1.Pod {
			p := bb(n, always, "sleep", "3600")
			p.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PostStart: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"false"}}}}
			return p
		}, []step{{name: "backoff", until: crashLooping("main", 1)}}},
		{"pre-stop-hook", func(n string) *v1.Pod {
			p := bb(n, always, "sleep", "3600")
			p.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"sh", "-c", "sleep 1"}}}}
			return p
		}, []step{{name: "ready", until: podReadyNow, then: deletePod(10)},
			{name: "terminated", until: all(deleting, terminatedIn("main", "Error"))}}},
		{"http-readiness-refused", func(n string) *v1.Pod {
			p := bb(n, always, "sleep", "3600")
			p.Spec.Containers[0].ReadinessProbe = &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Port: intstr.FromInt32(8080), Path: "/"}}, PeriodSeconds: 1}
			return p
		}, []step{{name: "not-ready", until: all(phaseIs(v1.PodRunning), readyC("main", false), condIs(v1.PodReadyToStartContainers, v1.ConditionTrue))}}},
		{"readiness-gate", func(n string) *v1.Pod {
			p := bb(n, always, "sleep", "3600")
			p.Spec.ReadinessGates = []v1.PodReadinessGate{{ConditionType: "example.com/gate"}}
			return p
		}, []step{{name: "gated", until: all(condIs(v1.ContainersReady, v1.ConditionTrue)), then: setGate},
			{name: "ready", until: podReadyNow}}},
	}
}

// setGate sets the readiness gate's condition, as the gate's owner would.
func setGate(ctx context.Context, t *testing.T, p *v1.Pod) {
	p = p.DeepCopy()
	p.Status.Conditions = append(p.Status.Conditions, v1.PodCondition{Type: "example.com/gate", Status: v1.ConditionTrue, LastTransitionTime: metav1.Now()})
	if _, err := bed.Client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Errorf("set readiness gate: %v", err)
	}
}

func updateCases() []transitionCase {
	always := v1.RestartPolicyAlways
	return []transitionCase{
		{"update-image-missing", func(n string) *v1.Pod { return bb(n, always, "sleep", "3600") },
			[]step{{name: "ready", until: podReadyNow, then: func(ctx context.Context, t *testing.T, p *v1.Pod) {
				updateSpec(ctx, t, p, func(p *v1.Pod) { p.Spec.Containers[0].Image = bed.Registry.Host + "/e2e/busybox:absent" })
			}}, {name: "pull-backoff", until: all(generationSeen, waitingIn("main", "ImagePullBackOff"))}}},
		{"update-image", func(n string) *v1.Pod { return bb(n, always, "sleep", "3600") },
			[]step{{name: "ready", until: podReadyNow, then: func(ctx context.Context, t *testing.T, p *v1.Pod) {
				updateSpec(ctx, t, p, func(p *v1.Pod) { p.Spec.Containers[0].Image = testbed.TestAppImage })
			}}, {name: "restarted", until: all(generationSeen, restartsAtLeast("main", 1), podReadyNow)}}},
		{"update-active-deadline", func(n string) *v1.Pod { return bb(n, always, "sleep", "3600") },
			[]step{{name: "ready", until: podReadyNow, then: func(ctx context.Context, t *testing.T, p *v1.Pod) {
				updateSpec(ctx, t, p, func(p *v1.Pod) { p.Spec.ActiveDeadlineSeconds = ptr(int64(2)) })
			}}, {name: "deadline", until: settledTerminal(v1.PodFailed)}}},
		{"update-tolerations", func(n string) *v1.Pod { return bb(n, always, "sleep", "3600") },
			[]step{{name: "ready", until: podReadyNow, then: func(ctx context.Context, t *testing.T, p *v1.Pod) {
				updateSpec(ctx, t, p, func(p *v1.Pod) {
					p.Spec.Tolerations = append(p.Spec.Tolerations, v1.Toleration{Key: "example.com/t", Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule})
				})
			}}, {name: "seen", until: all(generationSeen, func(p *v1.Pod) bool { return p.Generation > 1 })}}},
	}
}

func admissionCases() []transitionCase {
	always := v1.RestartPolicyAlways
	return []transitionCase{
		{"reject-node-selector", func(n string) *v1.Pod {
			p := bb(n, always, "sleep", "3600")
			p.Spec.NodeSelector = map[string]string{"example.com/absent": "x"}
			return p
		}, []step{{name: "rejected", until: phaseIs(v1.PodFailed)}}},
		{"reject-too-much-cpu", func(n string) *v1.Pod {
			p := bb(n, always, "sleep", "3600")
			p.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("1000")}
			return p
		}, []step{{name: "rejected", until: phaseIs(v1.PodFailed)}}},
		{"reject-unsupported-os", func(n string) *v1.Pod {
			p := bb(n, always, "sleep", "3600")
			p.Spec.OS = &v1.PodOS{Name: v1.Windows}
			return p
		}, []step{{name: "rejected", until: phaseIs(v1.PodFailed)}}},
	}
}

// networkNotReadyCase: a pod created while the runtime's pod network is not ready waits in
// ContainerCreating (NetworkNotReady events), then starts once the network is back. It
// runs alone (TestStatusTransitionsNetworkNotReady): it breaks the network of the bed's
// shared containerd.
func networkNotReadyCase() transitionCase {
	return transitionCase{"network-not-ready", func(n string) *v1.Pod { return bb(n, v1.RestartPolicyAlways, "sleep", "3600") },
		[]step{{name: "waiting", until: all(waitingIn("main", "ContainerCreating"), condIs(v1.PodReadyToStartContainers, v1.ConditionFalse),
			func(p *v1.Pod) bool { return p.Status.StartTime != nil }),
			then: func(ctx context.Context, t *testing.T, p *v1.Pod) {
				if err := bed.RestorePodNetwork(); err != nil {
					t.Error(err)
				}
			}},
			{name: "ready", until: podReadyNow}}}
}
