package e2e

import (
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
	"github.com/minikubelet/minikubelet/test/testbed"
)

// signature is the observable state of a pod the suite compares, one line:
// "Phase | Cond=Status(Reason) ... | container:state(reason) rN ..." (the same rendering
// as minikubelet's transition trace).
func signature(p *v1.Pod) string { return status.Summary(p.Status) }

// transitionCase: want lists what observed signatures must contain, in this order (each
// matched by a later signature than the previous); the last one is the end. One entry may
// require several fragments of the same signature, joined by " && ".
type transitionCase struct {
	name   string
	pod    func(node string) *v1.Pod
	want   []string
	during func(t *testing.T, p *v1.Pod) // optional action once the first state is seen
}

func bb(node string, policy v1.RestartPolicy, cmd ...string) *v1.Pod {
	p := newPod(node, cmd...)
	p.Spec.RestartPolicy = policy
	return p
}

func withInit(p *v1.Pod, cmd ...string) *v1.Pod {
	p.Spec.InitContainers = []v1.Container{{Name: "init", Image: testbed.BusyboxImage, ImagePullPolicy: v1.PullIfNotPresent, Command: cmd}}
	return p
}

func withImage(p *v1.Pod, image string, policy v1.PullPolicy) *v1.Pod {
	p.Spec.Containers[0].Image, p.Spec.Containers[0].ImagePullPolicy = image, policy
	return p
}

func transitionCases() []transitionCase {
	never, onFailure, always := v1.RestartPolicyNever, v1.RestartPolicyOnFailure, v1.RestartPolicyAlways
	return []transitionCase{
		{"exit0-never", func(n string) *v1.Pod { return bb(n, never, "true") },
			[]string{"Succeeded | ContainersReady=False(PodCompleted) Initialized=True(PodCompleted) PodReadyToStartContainers=False(PodSandboxNotReady) PodScheduled=True Ready=False(PodCompleted) | main:terminated(Completed) r0"}, nil},
		{"exit1-never", func(n string) *v1.Pod { return bb(n, never, "false") },
			[]string{"Failed | ContainersReady=False(PodFailed) Initialized=True PodReadyToStartContainers=False(PodSandboxNotReady) PodScheduled=True Ready=False(PodFailed) | main:terminated(Error) r0"}, nil},
		{"exit0-onfailure", func(n string) *v1.Pod { return bb(n, onFailure, "true") },
			[]string{"Succeeded | && main:terminated(Completed) r0"}, nil},
		{"exit1-onfailure-restarts", func(n string) *v1.Pod { return bb(n, onFailure, "false") },
			[]string{"main:waiting(CrashLoopBackOff) r1"}, nil},
		{"exit0-always-restarts", func(n string) *v1.Pod { return bb(n, always, "true") },
			[]string{"Running | ", "main:waiting(CrashLoopBackOff) r1"}, nil},
		{"running-ready", func(n string) *v1.Pod { return bb(n, always, "sleep", "3600") },
			[]string{"Running | ContainersReady=True Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=True | main:running r0"}, nil},
		{"init-fails-never", func(n string) *v1.Pod { return withInit(bb(n, never, "sleep", "3600"), "false") },
			[]string{"Failed | ContainersReady=False(PodFailed) Initialized=False(ContainersNotInitialized) PodReadyToStartContainers=False(PodSandboxNotReady) PodScheduled=True Ready=False(PodFailed) | init:terminated(Error) r0 main:waiting(PodInitializing) r0"}, nil},
		{"init-fails-onfailure", func(n string) *v1.Pod { return withInit(bb(n, onFailure, "sleep", "3600"), "false") },
			[]string{"Pending | ", "Initialized=False(ContainersNotInitialized)", "init:waiting(CrashLoopBackOff) r1 main:waiting(PodInitializing) r0"}, nil},
		{"init-fails-always", func(n string) *v1.Pod { return withInit(bb(n, always, "sleep", "3600"), "false") },
			[]string{"Pending | ", "init:waiting(CrashLoopBackOff) r1 main:waiting(PodInitializing) r0"}, nil},
		{"init-then-run", func(n string) *v1.Pod { return withInit(bb(n, always, "sleep", "3600"), "true") },
			[]string{"Running | ContainersReady=True Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=True | init:terminated(Completed) r0 main:running r0"}, nil},
		{"image-never-missing", func(n string) *v1.Pod {
			return withImage(bb(n, always, "true"), "docker.io/library/absent:1", v1.PullNever)
		},
			[]string{"Pending | ContainersReady=False(ContainersNotReady) Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=False(ContainersNotReady) | main:waiting(ErrImageNeverPull) r0"}, nil},
		{"invalid-image-name", func(n string) *v1.Pod {
			return withImage(bb(n, always, "true"), "Not_A::Valid/Name", v1.PullIfNotPresent)
		},
			[]string{"Pending | ", "main:waiting(InvalidImageName) r0"}, nil},
		{"pull-missing-tag", func(n string) *v1.Pod {
			return withImage(bb(n, always, "true"), bed.Registry.Host+"/e2e/busybox:absent", v1.PullIfNotPresent)
		}, []string{"main:waiting(ErrImagePull) r0", "main:waiting(ImagePullBackOff) r0"}, nil},
		{"crash-loop", func(n string) *v1.Pod { return bb(n, always, "sh", "-c", "exit 3") },
			[]string{"main:waiting(CrashLoopBackOff) r1"}, nil},
		{"termination-message", func(n string) *v1.Pod {
			p := testAppPod(n, "exit", "--code=4", "--message=done")
			p.Spec.RestartPolicy = never
			return p
		}, []string{"Failed | && main:terminated(Error) r0"}, nil},
		{"oom-killed", func(n string) *v1.Pod {
			// dd itself must be the process the OOM killer ends (exec), so the exit is 137.
			p := bb(n, never, "sh", "-c", "exec dd if=/dev/zero of=/dev/shm/fill bs=1M count=60")
			p.Spec.Containers[0].Resources.Limits = v1.ResourceList{v1.ResourceMemory: resource.MustParse("24Mi")}
			return p
		}, []string{"Failed | && main:terminated(OOMKilled) r0"}, nil},
		{"readiness-gate", func(n string) *v1.Pod {
			p := bb(n, always, "sleep", "3600")
			p.Spec.ReadinessGates = []v1.PodReadinessGate{{ConditionType: "example.com/gate"}}
			return p
		}, []string{"Running | ContainersReady=True Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=False(ReadinessGatesNotReady) | main:running r0",
			"Running | ContainersReady=True Initialized=True PodReadyToStartContainers=True PodScheduled=True Ready=True example.com/gate=True | main:running r0"},
			func(t *testing.T, p *v1.Pod) {
				// The gate's owner (this test) sets its condition.
				p.Status.Conditions = append(p.Status.Conditions, v1.PodCondition{Type: "example.com/gate", Status: v1.ConditionTrue, LastTransitionTime: metav1.Now()})
				if _, err := bed.Client.CoreV1().Pods(p.Namespace).UpdateStatus(t.Context(), p, metav1.UpdateOptions{}); err != nil {
					t.Errorf("set readiness gate: %v", err)
				}
			}},
	}
}

func containsAll(sig, want string) bool {
	for _, part := range strings.Split(want, " && ") {
		if !strings.Contains(sig, part) {
			return false
		}
	}
	return true
}

func TestStatusTransitions(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	k := startKubelet(t, "transitions")
	watchNode(ctx, t, k.NodeName, isReady)
	if _, err := bed.Registry.Push("e2e/busybox", "v1", bed.Images[testbed.BusyboxImage]); err != nil {
		t.Fatal(err)
	}
	for _, tc := range transitionCases() {
		t.Run(tc.name, func(t *testing.T) {
			cctx := ctxFor(t, 90*time.Second)
			p := createPod(cctx, t, tc.pod(k.NodeName))
			var seen []string
			next := 0
			acted := false
			watchPod(cctx, t, p, tc.want[len(tc.want)-1], func(p *v1.Pod) bool {
				sig := signature(p)
				if len(seen) == 0 || seen[len(seen)-1] != sig {
					seen = append(seen, sig)
				}
				if containsAll(sig, tc.want[next]) {
					next++
					if tc.during != nil && !acted && next == 1 {
						acted = true
						tc.during(t, p)
					}
				}
				if next == len(tc.want) {
					return true
				}
				return false
			})
			if t.Failed() || testing.Verbose() {
				t.Logf("observed:\n  %s", strings.Join(seen, "\n  "))
			}
		})
	}
}
