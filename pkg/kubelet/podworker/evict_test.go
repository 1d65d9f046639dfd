package podworker

import (
	"context"
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
)

// TestSyncEvict: an eviction order stops the pod's containers, reports it Failed with
// reason Evicted, the message and the DisruptionTarget condition, and Evict returns once
// the containers stopped; the pod is not started again.
func TestSyncEvict(t *testing.T) {
	ctx := context.Background()
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-ev"}, Spec: v1.PodSpec{
		NodeName: "n", TerminationGracePeriodSeconds: new(int64(30)),
		Containers: []v1.Container{{Name: "main", Image: "busybox:1.35", ImagePullPolicy: v1.PullIfNotPresent}},
	}}
	w, rt, st := newSyncFixture(t, pod, nil)
	wk := &worker{uid: pod.UID, wake: make(chan struct{}, 1), pod: pod, waiting: map[string]status.Waiting{}}
	w.pods[pod.UID] = wk
	w.startedOnce.Do(func() { close(w.started) })
	w.sync(ctx, wk)
	if ps, _ := st.Status(pod.UID); ps.Phase != v1.PodRunning {
		t.Fatalf("phase %s before the eviction", ps.Phase)
	}

	msg := "The node was low on resource: memory. "
	cond := &v1.PodCondition{Type: v1.DisruptionTarget, Status: v1.ConditionTrue, Reason: v1.PodReasonTerminationByKubelet, Message: msg}
	done := make(chan error, 1)
	go func() { done <- w.Evict(ctx, pod, 1, msg, cond) }()
	for wk.evictOrder() == nil {
		time.Sleep(time.Millisecond)
	}
	rt.Called = nil
	w.sync(ctx, wk)
	if err := <-done; err != nil {
		t.Fatalf("Evict: %v", err)
	}
	if calls := mutations(rt.GetCalls()); !slices.Contains(calls, "StopContainer") || slices.Contains(calls, "CreateContainer") {
		t.Errorf("eviction sync: %v, want the container stopped and nothing started", calls)
	}
	ps, _ := st.Status(pod.UID)
	if ps.Phase != v1.PodFailed || ps.Reason != "Evicted" || ps.Message != msg {
		t.Errorf("status phase %s reason %q message %q", ps.Phase, ps.Reason, ps.Message)
	}
	if i := slices.IndexFunc(ps.Conditions, func(c v1.PodCondition) bool { return c.Type == v1.DisruptionTarget }); i < 0 || ps.Conditions[i].Message != msg {
		t.Errorf("no DisruptionTarget with the message in %+v", ps.Conditions)
	}
	rt.Called = nil
	w.sync(ctx, wk)
	if calls := mutations(rt.GetCalls()); slices.Contains(calls, "CreateContainer") || slices.Contains(calls, "RunPodSandbox") {
		t.Errorf("evicted pod started again: %v", calls)
	}
}

func (wk *worker) evictOrder() *eviction {
	wk.mu.Lock()
	defer wk.mu.Unlock()
	return wk.evict
}
