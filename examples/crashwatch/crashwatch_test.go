package crashwatch

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/minikubelet/minikubelet/kit"
)

// cluster is one kit cluster for all tests: a control plane and a minikubelet node.
var cluster *kit.Cluster

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	start := time.Now()
	c, err := kit.Start(ctx, kit.Options{Name: "crashwatch"})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashwatch: cannot start the kit's cluster:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "crashwatch: cluster up in %.1fs\n", time.Since(start).Seconds())
	cluster = c
	// The controller under test, as it would run in a real cluster: through the API.
	ctrlCtx, stopCtrl := context.WithCancel(context.Background())
	go New(c.Client).Run(ctrlCtx)
	code := m.Run()
	stopCtrl()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "component logs:\n%s\n", c.Logs(30))
	}
	c.Stop()
	os.Exit(code)
}

// watchedPod is a labelled pod running the kit's test app with args.
func watchedPod(name string, args ...string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{Label: "true"}},
		Spec: v1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers:                    []v1.Container{{Name: "app", Image: cluster.Images.TestApp, Args: args}},
		},
	}
}

func run(ctx context.Context, t *testing.T, pod *v1.Pod) *v1.Pod {
	t.Helper()
	p, err := cluster.RunPod(ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.DeletePod(context.Background(), p) })
	return p
}

// waitFor is WaitForTransition failing the test, whose message then holds the whole trace.
func waitFor(ctx context.Context, t *testing.T, p *v1.Pod, want kit.Matcher) *v1.Pod {
	t.Helper()
	got, err := cluster.WaitForTransition(ctx, p, want)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// waitReaction waits until the controller annotated p with state and recorded an event
// with reason (none if "").
func waitReaction(ctx context.Context, t *testing.T, p *v1.Pod, state, reason string) {
	t.Helper()
	var seen string
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		cur, err := cluster.Client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		seen = cur.Annotations[Annotation]
		if seen != state {
			return false, nil
		}
		if reason == "" {
			return true, nil
		}
		evs, err := cluster.Client.CoreV1().Events(p.Namespace).List(ctx, metav1.ListOptions{FieldSelector: fields.Set{
			"involvedObject.name": p.Name, "reason": reason}.String()})
		return err == nil && len(evs.Items) > 0, err
	})
	if err != nil {
		t.Fatalf("controller did not react with %s/%s (annotation %q): %v\n%s", state, reason, seen, err, cluster.Trace(p))
	}
}

// TestCrashLoop: a container that keeps exiting goes into CrashLoopBackOff; the
// controller marks the pod and records a CrashLooping event.
func TestCrashLoop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := run(ctx, t, watchedPod("crasher", "exit", "--code=1", "--after=500ms"))
	got := waitFor(ctx, t, p, kit.All(kit.Waiting("app", "CrashLoopBackOff"), kit.LastTerminated("app", "Error")))
	t.Logf("CrashLoopBackOff after %d restarts", got.Status.ContainerStatuses[0].RestartCount)
	waitReaction(ctx, t, p, CrashLoopBackOff, "CrashLooping")
}

// TestReadinessProbe: a serving pod is Healthy; when its readiness probe starts failing
// (the kit's FailProbe) it turns NotReady and the controller says so; healed, it is
// Healthy again.
func TestReadinessProbe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pod := watchedPod("server", "serve")
	pod.Spec.Containers[0].ReadinessProbe = &v1.Probe{PeriodSeconds: 1, FailureThreshold: 1,
		ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}}}
	p := run(ctx, t, pod)
	waitFor(ctx, t, p, kit.Ready())
	waitReaction(ctx, t, p, Healthy, "")
	if err := cluster.FailProbe(ctx, p, "app"); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, p, kit.All(kit.NotReady(), kit.Running("app")))
	waitReaction(ctx, t, p, NotReady, "BecameNotReady")
	if err := cluster.HealProbe(ctx, p, "app"); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, p, kit.Ready())
	waitReaction(ctx, t, p, Healthy, "")
}
