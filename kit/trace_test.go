package kit

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestTraceDiffsAndFailure drives a trace through a fake API: statuses are recorded once
// each (a metadata-only update is not a step), later ones as keyed diffs, waits consume
// the trace in order, and a wait that cannot be met fails with the whole trace.
func TestTraceDiffsAndFailure(t *testing.T) {
	client := fake.NewClientset()
	pods := client.CoreV1().Pods("default")
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"}, Status: v1.PodStatus{Phase: v1.PodPending}}
	tr := newTrace(client, "default", "p")
	defer tr.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.WaitFor(ctx, Phase(v1.PodPending)); err != nil {
		t.Fatal(err)
	}
	update := func(f func(*v1.Pod)) {
		t.Helper()
		f(pod)
		if _, err := pods.Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	update(func(p *v1.Pod) {
		p.Status.Phase = v1.PodRunning
		p.Status.Conditions = []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue}, {Type: v1.PodScheduled, Status: v1.ConditionTrue}}
		p.Status.ContainerStatuses = []v1.ContainerStatus{{Name: "a", State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}}, {Name: "b", Ready: true}}
	})
	update(func(p *v1.Pod) { p.Annotations = map[string]string{"x": "y"} }) // not a status change
	update(func(p *v1.Pod) {
		p.Status.Conditions[0].Status = v1.ConditionFalse
		p.Status.ContainerStatuses[0].RestartCount = 1
	})
	if _, err := tr.WaitFor(ctx, Ready()); err != nil {
		t.Fatal(err)
	}
	got, err := tr.WaitFor(ctx, All(NotReady(), Restarts("a", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.ContainerStatuses[0].RestartCount != 1 {
		t.Errorf("matched pod %s", Summary(got))
	}
	steps := tr.Steps()
	if len(steps) != 3 {
		t.Fatalf("%d steps, want 3:\n%s", len(steps), tr)
	}
	if want := `{"conditions":{"Ready":{"status":"False"}},"containerStatuses":{"a":{"restartCount":1}}}`; steps[2].Diff != want {
		t.Errorf("diff = %s, want %s", steps[2].Diff, want)
	}
	// Ready was consumed by the first wait: waiting for it again fails, with the trace.
	short, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	_, err = tr.WaitFor(short, Ready())
	if err == nil {
		t.Fatal("a wait for a status already consumed succeeded")
	}
	for _, want := range []string{"no status matched Ready=True (context deadline exceeded)", "#0 ", "ADDED: Pending", `status: {"phase":"Pending"}`,
		"#1 ", "Running | PodScheduled=True Ready=True | a:running r0 b:unknown ready r0", "#2 ", `changed: {"conditions":{"Ready":{"status":"False"}}`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("failure message lacks %q:\n%s", want, err)
		}
	}
	if err := pods.Delete(ctx, "p", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.WaitFor(ctx, Phase(v1.PodSucceeded)); err == nil || !strings.Contains(err.Error(), "deleted first") {
		t.Errorf("wait on a deleted pod: %v", err)
	}
}
