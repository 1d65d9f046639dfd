package e2e

import (
	"context"
	"fmt"

	"github.com/minikubelet/minikubelet/test/testbed"
	"net"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodLifecycleRunsAndDeletes(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "pod-basic")
	watchNode(ctx, t, k.NodeName, isReady)

	pod := newPod(k.NodeName, "sleep", "3600")
	created := time.Now()
	p := createPod(ctx, t, pod)
	p = watchPod(ctx, t, p, "Running and Ready", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning && podReady(p) })
	t.Logf("create -> Running+Ready seen by watch: %v", time.Since(created))

	_, subnet, _ := net.ParseCIDR(bed.Opts().PodSubnet)
	if ip := net.ParseIP(p.Status.PodIP); ip == nil || !subnet.Contains(ip) {
		t.Errorf("podIP %q not in the bed's pod subnet %s", p.Status.PodIP, subnet)
	}
	if p.Status.HostIP != "127.0.0.1" || p.Status.StartTime == nil {
		t.Errorf("hostIP %q startTime %v", p.Status.HostIP, p.Status.StartTime)
	}
	cs := containerStatus(p, "main")
	if cs == nil || cs.State.Running == nil || !cs.Ready || cs.Started == nil || !*cs.Started ||
		!strings.Contains(cs.ContainerID, "://") || cs.ImageID == "" || cs.Image != pod.Spec.Containers[0].Image {
		t.Fatalf("container status: %+v", cs)
	}
	for _, ct := range []v1.PodConditionType{v1.PodReadyToStartContainers, v1.PodInitialized, v1.ContainersReady, v1.PodReady, v1.PodScheduled} {
		if c := podCondition(p, ct); c == nil || c.Status != v1.ConditionTrue {
			t.Errorf("condition %s = %+v, want True", ct, c)
		}
	}

	// Graceful deletion: sleep ignores SIGTERM as PID 1, so the kill comes after the 2s grace.
	deleted := time.Now()
	if err := bed.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(2))}); err != nil {
		t.Fatal(err)
	}
	if err := waitPodGone(ctx, p); err != nil {
		t.Fatalf("pod not deleted: %v", err)
	}
	took := time.Since(deleted)
	t.Logf("delete -> object gone: %v", took)
	if took < 2*time.Second || took > 10*time.Second {
		t.Errorf("deletion took %v, want the 2s grace period honoured and then prompt removal", took)
	}
}

func TestPodLifecycleInitContainersRunInOrder(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "pod-init")
	watchNode(ctx, t, k.NodeName, isReady)
	pod := newPod(k.NodeName, "sleep", "3600")
	pod.Spec.InitContainers = []v1.Container{
		{Name: "init1", Image: testbed.BusyboxImage, ImagePullPolicy: v1.PullIfNotPresent, Command: []string{"sleep", "1"}},
		{Name: "init2", Image: testbed.BusyboxImage, ImagePullPolicy: v1.PullIfNotPresent, Command: []string{"sleep", "1"}},
	}
	p := createPod(ctx, t, pod)
	sawInitializing := false
	p = watchPod(ctx, t, p, "Running", func(p *v1.Pod) bool {
		i1, i2, m := containerStatus(p, "init1"), containerStatus(p, "init2"), containerStatus(p, "main")
		if i1 == nil || i2 == nil || m == nil {
			return false
		}
		if (i2.State.Running != nil || i2.State.Terminated != nil) && (i1.State.Terminated == nil || i1.State.Terminated.Reason != "Completed") {
			t.Errorf("init2 ran before init1 completed: %s", describe(p))
		}
		if m.State.Running != nil && (i2.State.Terminated == nil || i2.State.Terminated.ExitCode != 0) {
			t.Errorf("main started before init2 completed: %s", describe(p))
		}
		if p.Status.Phase == v1.PodPending && m.State.Waiting != nil && m.State.Waiting.Reason == "PodInitializing" {
			if c := podCondition(p, v1.PodInitialized); c != nil && c.Status == v1.ConditionFalse && c.Reason == "ContainersNotInitialized" {
				sawInitializing = true
			}
		}
		return p.Status.Phase == v1.PodRunning
	})
	if !sawInitializing {
		t.Errorf("never saw Pending with main waiting PodInitializing and Initialized=False/ContainersNotInitialized")
	}
	i1, i2 := containerStatus(p, "init1").State.Terminated, containerStatus(p, "init2").State.Terminated
	if i1 == nil || i2 == nil || i2.StartedAt.Before(&i1.FinishedAt) {
		t.Errorf("init2 started %v before init1 finished %v", i2, i1)
	}
}

func TestPodLifecycleExitCodesAndRestartPolicy(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "pod-exit")
	watchNode(ctx, t, k.NodeName, isReady)
	cases := []struct {
		policy   v1.RestartPolicy
		code     string
		phase    v1.PodPhase
		reason   string
		readyWhy string
	}{
		{v1.RestartPolicyNever, "0", v1.PodSucceeded, "Completed", "PodCompleted"},
		{v1.RestartPolicyNever, "3", v1.PodFailed, "Error", "PodFailed"},
		{v1.RestartPolicyOnFailure, "0", v1.PodSucceeded, "Completed", "PodCompleted"},
	}
	for _, tc := range cases {
		t.Run(string(tc.policy)+"-exit-"+tc.code, func(t *testing.T) {
			pod := newPod(k.NodeName, "sh", "-c", "exit "+tc.code)
			pod.Spec.RestartPolicy = tc.policy
			p := createPod(ctx, t, pod)
			p = watchPod(ctx, t, p, string(tc.phase), func(p *v1.Pod) bool { return p.Status.Phase == tc.phase })
			term := containerStatus(p, "main").State.Terminated
			if term == nil || term.Reason != tc.reason || fmt.Sprint(term.ExitCode) != tc.code || term.FinishedAt.IsZero() {
				t.Errorf("terminated state %+v, want reason %s exit %s", term, tc.reason, tc.code)
			}
			if c := podCondition(p, v1.PodReady); c == nil || c.Status != v1.ConditionFalse || c.Reason != tc.readyWhy {
				t.Errorf("Ready condition %+v, want False/%s", c, tc.readyWhy)
			}
			if n := containerStatus(p, "main").RestartCount; n != 0 {
				t.Errorf("restartCount %d, want 0", n)
			}
		})
	}
}

// TestPodLifecycleCrashLoopBackOff checks the restart schedule against upstream's: the first
// restart at once, then back-off 10s, 20s (each after the ~1s the container runs).
func TestPodLifecycleCrashLoopBackOff(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "pod-crash")
	watchNode(ctx, t, k.NodeName, isReady)
	p := createPod(ctx, t, newPod(k.NodeName, "sh", "-c", "sleep 1; exit 1"))
	var starts []time.Time // startedAt of each instance
	sawBackOff := ""
	watchPod(ctx, t, p, "restartCount 3 running", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		if cs == nil {
			return false
		}
		if w := cs.State.Waiting; w != nil && w.Reason == "CrashLoopBackOff" && sawBackOff == "" {
			sawBackOff = w.Message
		}
		if r := cs.State.Running; r != nil && int(cs.RestartCount) == len(starts) {
			starts = append(starts, r.StartedAt.Time)
		}
		return len(starts) >= 4
	})
	// Gaps between starts: run time (~1s) + back-off 0s, 10s, 20s. Second-resolution
	// timestamps and the sync loop allow ±2s.
	want := []time.Duration{1 * time.Second, 11 * time.Second, 21 * time.Second}
	for i := 1; i < len(starts); i++ {
		gap := starts[i].Sub(starts[i-1])
		t.Logf("restart %d: %v after the previous start", i, gap)
		if d := gap - want[i-1]; d < -2*time.Second || d > 2*time.Second {
			t.Errorf("restart %d came %v after the previous start, want %v ±2s", i, gap, want[i-1])
		}
	}
	if !strings.HasPrefix(sawBackOff, "back-off 10s restarting failed container=main pod="+p.Name+"_default(") {
		t.Errorf("CrashLoopBackOff message %q", sawBackOff)
	}
}

func TestPodLifecycleActiveDeadline(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	k := startKubelet(t, "pod-deadline")
	watchNode(ctx, t, k.NodeName, isReady)
	pod := newPod(k.NodeName, "sleep", "3600")
	pod.Spec.ActiveDeadlineSeconds = ptr(int64(3))
	p := createPod(ctx, t, pod)
	// Like upstream, the phase is reported Failed first and the containers are killed after.
	p = watchPod(ctx, t, p, "Failed with the container killed", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return p.Status.Phase == v1.PodFailed && cs != nil && cs.State.Terminated != nil
	})
	if p.Status.Reason != "DeadlineExceeded" || p.Status.Message != "Pod was active on the node longer than the specified deadline" {
		t.Errorf("reason %q message %q", p.Status.Reason, p.Status.Message)
	}
}

func TestPodLifecycleImagePullPolicies(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "pod-pull")
	watchNode(ctx, t, k.NodeName, isReady)
	ref, err := bed.Registry.Push("e2e/busybox", "v1", bed.Images[testbed.BusyboxImage])
	if err != nil {
		t.Fatal(err)
	}
	withImage := func(image string, policy v1.PullPolicy) *v1.Pod {
		p := newPod(k.NodeName, "sleep", "3600")
		p.Spec.Containers[0].Image, p.Spec.Containers[0].ImagePullPolicy = image, policy
		return p
	}
	running := func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning }

	before := bed.Registry.ManifestPulls("e2e/busybox")
	watchPod(ctx, t, createPod(ctx, t, withImage(ref, v1.PullAlways)), "Running", running)
	afterAlways := bed.Registry.ManifestPulls("e2e/busybox")
	if afterAlways <= before {
		t.Errorf("Always: registry saw no pull (%d -> %d)", before, afterAlways)
	}
	watchPod(ctx, t, createPod(ctx, t, withImage(ref, v1.PullIfNotPresent)), "Running", running)
	if n := bed.Registry.ManifestPulls("e2e/busybox"); n != afterAlways {
		t.Errorf("IfNotPresent with the image present pulled again (%d -> %d)", afterAlways, n)
	}
	watchPod(ctx, t, createPod(ctx, t, withImage(ref, v1.PullAlways)), "Running", running)
	if n := bed.Registry.ManifestPulls("e2e/busybox"); n <= afterAlways {
		t.Errorf("Always with the image present did not pull again (%d -> %d)", afterAlways, n)
	}

	waitingReason := func(reason string) func(*v1.Pod) bool {
		return func(p *v1.Pod) bool {
			cs := containerStatus(p, "main")
			return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == reason
		}
	}
	p := watchPod(ctx, t, createPod(ctx, t, withImage(bed.Registry.Host+"/e2e/never:v1", v1.PullNever)), "ErrImageNeverPull", waitingReason("ErrImageNeverPull"))
	if msg := containerStatus(p, "main").State.Waiting.Message; msg != fmt.Sprintf("Container image %q is not present with pull policy of Never", bed.Registry.Host+"/e2e/never:v1") {
		t.Errorf("ErrImageNeverPull message %q", msg)
	}
	watchPod(ctx, t, createPod(ctx, t, withImage("Bad_Image::name", v1.PullIfNotPresent)), "InvalidImageName", waitingReason("InvalidImageName"))
	missing := createPod(ctx, t, withImage(bed.Registry.Host+"/e2e/busybox:no-such-tag", v1.PullIfNotPresent))
	watchPod(ctx, t, missing, "ErrImagePull", waitingReason("ErrImagePull"))
	p = watchPod(ctx, t, missing, "ImagePullBackOff", waitingReason("ImagePullBackOff"))
	if msg := containerStatus(p, "main").State.Waiting.Message; !strings.HasPrefix(msg, fmt.Sprintf("Back-off pulling image %q: ", bed.Registry.Host+"/e2e/busybox:no-such-tag")) {
		t.Errorf("ImagePullBackOff message %q", msg)
	}
}

func TestPodLifecyclePullSecret(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	k := startKubelet(t, "pod-secret")
	watchNode(ctx, t, k.NodeName, isReady)
	ref, err := bed.Registry.Push("private/busybox", "v1", bed.Images[testbed.BusyboxImage])
	if err != nil {
		t.Fatal(err)
	}
	auth := fmt.Sprintf(`{"auths":{%q:{"username":%q,"password":%q}}}`, bed.Registry.Host, bed.Registry.User, bed.Registry.Password)
	sec := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pull-" + k.NodeName, Namespace: "default"}, Type: v1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{v1.DockerConfigJsonKey: []byte(auth)}}
	if _, err := bed.Client.CoreV1().Secrets("default").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = bed.Client.CoreV1().Secrets("default").Delete(context.Background(), sec.Name, metav1.DeleteOptions{})
	})

	noSecret := newPod(k.NodeName, "sleep", "3600")
	noSecret.Spec.Containers[0].Image, noSecret.Spec.Containers[0].ImagePullPolicy = ref, v1.PullAlways
	watchPod(ctx, t, createPod(ctx, t, noSecret), "ErrImagePull", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == "ErrImagePull"
	})
	withSecret := noSecret.DeepCopy()
	withSecret.Name += "-s"
	withSecret.Spec.ImagePullSecrets = []v1.LocalObjectReference{{Name: sec.Name}}
	watchPod(ctx, t, createPod(ctx, t, withSecret), "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
}
