package podworker

import (
	"context"
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// Container GC as upstream's default policy: per container, the running instance and
// the newest dead one stay; dead sandboxes other than the newest go once they hold no
// container left.
func TestDeadToRemove(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	ct := func(id, name, sb string, restarts int, state cri.ContainerState) cri.Container {
		return cri.Container{ID: id, Name: name, SandboxID: sb, RestartCount: restarts, State: state, CreatedAt: t0.Add(time.Duration(restarts) * time.Second)}
	}
	sb := func(id string, attempt uint32, ready bool) cri.Sandbox {
		return cri.Sandbox{ID: id, Attempt: attempt, Ready: ready, CreatedAt: t0.Add(time.Duration(attempt) * time.Second)}
	}
	for _, tc := range []struct {
		name                  string
		st                    cri.PodState
		containers, sandboxes []string
	}{
		{name: "running and one dead instance: nothing",
			st: cri.PodState{Sandboxes: []cri.Sandbox{sb("s1", 0, true)},
				Containers: []cri.Container{ct("c2", "app", "s1", 2, cri.StateRunning), ct("c1", "app", "s1", 1, cri.StateExited)}}},
		{name: "older dead instances go, the newest dead stays",
			st: cri.PodState{Sandboxes: []cri.Sandbox{sb("s1", 0, true)},
				Containers: []cri.Container{ct("c3", "app", "s1", 3, cri.StateRunning), ct("c2", "app", "s1", 2, cri.StateExited),
					ct("c1", "app", "s1", 1, cri.StateExited), ct("c0", "app", "s1", 0, cri.StateCreated)}},
			containers: []string{"c1", "c0"}},
		{name: "in back-off: the newest exited stays, per container",
			st: cri.PodState{Sandboxes: []cri.Sandbox{sb("s1", 0, true)},
				Containers: []cri.Container{ct("a2", "a", "s1", 2, cri.StateExited), ct("b1", "b", "s1", 1, cri.StateExited),
					ct("a1", "a", "s1", 1, cri.StateExited), ct("b0", "b", "s1", 0, cri.StateExited)}},
			containers: []string{"a1", "b0"}},
		{name: "unknown instances are left alone",
			st: cri.PodState{Sandboxes: []cri.Sandbox{sb("s1", 0, true)},
				Containers: []cri.Container{ct("c2", "app", "s1", 2, cri.StateUnknown), ct("c1", "app", "s1", 1, cri.StateExited),
					ct("c0", "app", "s1", 0, cri.StateUnknown)}}},
		{name: "old dead sandbox: goes once empty, kept while it holds the newest dead instance",
			st: cri.PodState{Sandboxes: []cri.Sandbox{sb("s3", 2, true), sb("s2", 1, false), sb("s1", 0, false)},
				Containers: []cri.Container{ct("c2", "app", "s3", 2, cri.StateRunning), ct("c1", "app", "s2", 1, cri.StateExited),
					ct("c0", "app", "s1", 0, cri.StateExited)}},
			containers: []string{"c0"}, sandboxes: []string{"s1"}},
		{name: "the newest sandbox stays even dead and empty; a ready old one stays",
			st:        cri.PodState{Sandboxes: []cri.Sandbox{sb("s3", 2, false), sb("s2", 1, true), sb("s1", 0, false)}},
			sandboxes: []string{"s1"}},
		{name: "nothing at all", st: cri.PodState{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cts, sbs := deadToRemove(&tc.st)
			var gotC, gotS []string
			for _, c := range cts {
				gotC = append(gotC, c.ID)
			}
			for _, s := range sbs {
				gotS = append(gotS, s.ID)
			}
			if !slices.Equal(gotC, tc.containers) || !slices.Equal(gotS, tc.sandboxes) {
				t.Errorf("removed containers %v sandboxes %v, want %v %v", gotC, gotS, tc.containers, tc.sandboxes)
			}
		})
	}
}

// collectDead acts on the fake runtime: the decided containers and sandboxes removed
// (the sandbox stopped first), then nothing again within the period.
func TestCollectDeadOnFakeRuntime(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1"}}
	w, rt, _ := newSyncFixture(t, pod, nil)
	for _, id := range []string{"c2", "c1", "c0"} {
		rt.Containers[id] = &critest.FakeContainer{ContainerStatus: runtimeapi.ContainerStatus{Id: id}}
	}
	for _, id := range []string{"s1", "s0"} {
		rt.Sandboxes[id] = &critest.FakePodSandbox{PodSandboxStatus: runtimeapi.PodSandboxStatus{Id: id}}
	}
	st := &cri.PodState{UID: pod.UID,
		Sandboxes: []cri.Sandbox{{ID: "s1", Attempt: 1, Ready: true}, {ID: "s0"}},
		Containers: []cri.Container{{ID: "c2", Name: "app", SandboxID: "s1", State: cri.StateRunning},
			{ID: "c1", Name: "app", SandboxID: "s1", State: cri.StateExited}, {ID: "c0", Name: "app", SandboxID: "s0", State: cri.StateExited}}}
	wk := &worker{uid: pod.UID}
	rt.Called = nil
	w.collectDead(context.Background(), wk, pod, st)
	if got := mutations(rt.GetCalls()); !slices.Equal(got, []string{"RemoveContainer", "StopPodSandbox", "RemovePodSandbox"}) {
		t.Errorf("calls %v", got)
	}
	if _, ok := rt.Containers["c0"]; ok || len(rt.Containers) != 2 {
		t.Errorf("containers left %v", rt.Containers)
	}
	if _, ok := rt.Sandboxes["s0"]; ok || len(rt.Sandboxes) != 1 {
		t.Errorf("sandboxes left %v", rt.Sandboxes)
	}
	rt.Called = nil
	w.collectDead(context.Background(), wk, pod, st)
	if got := mutations(rt.GetCalls()); len(got) != 0 {
		t.Errorf("within the period: %v", got)
	}
}
