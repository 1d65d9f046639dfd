package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/minikubelet/minikubelet/kit"
)

// runKitSuite (TestClusters/Kit) runs the test kit (package kit) as another module
// would: its own cluster of two nodes (a bed of its own name beside the e2e one), each
// fault on a pod or node, and a wrong expectation whose failure must carry the whole
// transition trace.
func runKitSuite(t *testing.T) {
	ctx := ctxFor(t, 12*time.Minute)
	start := time.Now()
	c, err := kit.Start(ctx, kit.Options{Name: "kite2e", Nodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kit cluster logs:\n%s", c.Logs(40))
		}
		c.Stop()
	})
	t.Logf("kit cluster of %d nodes up in %.1fs", len(c.Nodes), time.Since(start).Seconds())
	n0, n1 := c.Nodes[0].Name, c.Nodes[1].Name
	t.Run("KillContainer", func(t *testing.T) { kitKill(ctx, t, c, n1) })
	t.Run("OOMContainer", func(t *testing.T) { kitOOM(ctx, t, c, n0) })
	t.Run("FailProbe", func(t *testing.T) { kitProbe(ctx, t, c, n1) })
	t.Run("FailPulls", func(t *testing.T) { kitPull(ctx, t, c, n0) })
	t.Run("StopRuntime", func(t *testing.T) { kitRuntime(ctx, t, c, n1) })
	t.Run("PauseAPI", func(t *testing.T) { kitPause(ctx, t, c, n0, n1) })
	t.Run("WaitForTransitionFailure", func(t *testing.T) { kitWrongWait(ctx, t, c, n0) })
}

// kitRun runs pod on the kit's cluster and deletes it when the test ends.
func kitRun(ctx context.Context, t *testing.T, c *kit.Cluster, pod *v1.Pod) *v1.Pod {
	t.Helper()
	p, err := c.RunPod(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.DeletePod(ctx, p); err != nil {
			t.Errorf("delete %s: %v", p.Name, err)
		}
	})
	return p
}

// kitWait is WaitForTransition failing the test (with the whole trace) on error.
func kitWait(ctx context.Context, t *testing.T, c *kit.Cluster, p *v1.Pod, want kit.Matcher, within time.Duration) *v1.Pod {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	got, err := c.WaitForTransition(wctx, p, want)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func kitKill(ctx context.Context, t *testing.T, c *kit.Cluster, node string) {
	p := kitRun(ctx, t, c, newPod(node, "sleep", "3600"))
	kitWait(ctx, t, c, p, kit.Running("main"), time.Minute)
	if err := c.KillContainer(ctx, p, "main"); err != nil {
		t.Fatal(err)
	}
	got := kitWait(ctx, t, c, p, kit.All(kit.Running("main"), kit.Restarts("main", 1)), time.Minute)
	last := got.Status.ContainerStatuses[0].LastTerminationState.Terminated
	if last == nil || last.ExitCode != 137 || last.Reason != "Error" {
		t.Errorf("last termination = %+v, want exit 137, reason Error", last)
	}
}

func kitOOM(ctx context.Context, t *testing.T, c *kit.Cluster, node string) {
	pod := newPod(node, "sleep", "3600")
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	p := kitRun(ctx, t, c, pod)
	kitWait(ctx, t, c, p, kit.Running("main"), time.Minute)
	if err := c.OOMContainer(ctx, p, "main"); err != nil {
		t.Fatal(err)
	}
	got := kitWait(ctx, t, c, p, kit.All(kit.Phase(v1.PodFailed), kit.Terminated("main", "OOMKilled")), time.Minute)
	if code := got.Status.ContainerStatuses[0].State.Terminated.ExitCode; code != 137 {
		t.Errorf("exit code %d, want 137", code)
	}
}

func kitProbe(ctx context.Context, t *testing.T, c *kit.Cluster, node string) {
	pod := newPod(node, "/testapp", "serve")
	pod.Spec.Containers[0].Image = c.Images.TestApp
	pod.Spec.Containers[0].ReadinessProbe = &v1.Probe{PeriodSeconds: 1, FailureThreshold: 1,
		ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}}
	p := kitRun(ctx, t, c, pod)
	kitWait(ctx, t, c, p, kit.Ready(), time.Minute)
	if err := c.FailProbe(ctx, p, "main"); err != nil {
		t.Fatal(err)
	}
	kitWait(ctx, t, c, p, kit.All(kit.NotReady(), kit.ContainerReady("main", false), kit.Running("main")), 30*time.Second)
	if err := c.HealProbe(ctx, p, "main"); err != nil {
		t.Fatal(err)
	}
	got := kitWait(ctx, t, c, p, kit.Ready(), 30*time.Second)
	if n := got.Status.ContainerStatuses[0].RestartCount; n != 0 {
		t.Errorf("a failing readiness probe restarted the container (%d restarts)", n)
	}
}

func kitPull(ctx context.Context, t *testing.T, c *kit.Cluster, node string) {
	img, err := c.PullableImage(c.Images.Busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.FailPulls(img); err != nil {
		t.Fatal(err)
	}
	pod := newPod(node, "sleep", "3600")
	pod.Spec.Containers[0].Image = img
	p := kitRun(ctx, t, c, pod)
	got := kitWait(ctx, t, c, p, kit.Waiting("main", "ErrImagePull"), time.Minute)
	if msg := got.Status.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(msg, "503") {
		t.Errorf("ErrImagePull message %q does not name the registry's 503", msg)
	}
	kitWait(ctx, t, c, p, kit.Waiting("main", "ImagePullBackOff"), time.Minute)
	if err := c.RestorePulls(img); err != nil {
		t.Fatal(err)
	}
	kitWait(ctx, t, c, p, kit.Running("main"), time.Minute)
}

func kitRuntime(ctx context.Context, t *testing.T, c *kit.Cluster, node string) {
	p := kitRun(ctx, t, c, newPod(node, "sleep", "3600"))
	kitWait(ctx, t, c, p, kit.Running("main"), time.Minute)
	if err := c.StopRuntime(node); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	n, err := c.WaitForNodeCondition(wctx, node, v1.NodeReady, v1.ConditionFalse)
	if err != nil {
		_ = c.StartRuntime(node)
		t.Fatal(err)
	}
	if msg := readyCondition(n).Message; msg != "container runtime is down" {
		t.Errorf("Ready message %q, want the runtime named down", msg)
	}
	if err := c.StartRuntime(node); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitForNodeCondition(wctx, node, v1.NodeReady, v1.ConditionTrue); err != nil {
		t.Fatal(err)
	}
	// The container outlived its runtime's outage: still the first one.
	got, err := c.Client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s := got.Status.ContainerStatuses[0]; s.State.Running == nil || s.RestartCount != 0 {
		t.Errorf("after the runtime came back: %s", kit.Summary(got))
	}
}

func kitPause(ctx context.Context, t *testing.T, c *kit.Cluster, other, node string) {
	p := kitRun(ctx, t, c, newPod(node, "sleep", "3600"))
	kitWait(ctx, t, c, p, kit.Running("main"), time.Minute)
	if err := c.PauseAPI(node); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	// The node monitor's grace period is 50 s.
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := c.WaitForNodeCondition(wctx, node, v1.NodeReady, v1.ConditionUnknown); err != nil {
		_ = c.ResumeAPI(node)
		t.Fatal(err)
	}
	t.Logf("node Unknown %.1fs after its API traffic stalled", time.Since(paused).Seconds())
	if _, err := c.WaitForNodeCondition(wctx, other, v1.NodeReady, v1.ConditionTrue); err != nil {
		t.Errorf("the other node: %v", err)
	}
	if err := c.ResumeAPI(node); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitForNodeCondition(wctx, node, v1.NodeReady, v1.ConditionTrue); err != nil {
		t.Fatal(err)
	}
	kitWait(ctx, t, c, p, kit.All(kit.Ready(), kit.Restarts("main", 0)), time.Minute)
}

// kitWrongWait: a wait for a status the pod never reaches fails with every step the
// trace saw, the first whole and the later ones as diffs.
func kitWrongWait(ctx context.Context, t *testing.T, c *kit.Cluster, node string) {
	pod := newPod(node, "sh", "-c", "exit 3")
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	p := kitRun(ctx, t, c, pod)
	kitWait(ctx, t, c, p, kit.All(kit.Phase(v1.PodFailed), kit.Terminated("main", "Error")), time.Minute)
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := c.WaitForTransition(wctx, p, kit.Terminated("main", "Completed"))
	if err == nil {
		t.Fatal("a wait for Completed succeeded on a pod that exited 3")
	}
	msg := err.Error()
	for _, want := range []string{"no status matched main:terminated(Completed)", "context deadline exceeded",
		"#0 ", "ADDED: Pending", `status: {"phase":"Pending"`, "MODIFIED:", "changed: {",
		"main:terminated(Error,3)", `"exitCode":3`, "Failed |"} {
		if !strings.Contains(msg, want) {
			t.Errorf("failure message lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("the message:\n%s", msg)
	}
}
