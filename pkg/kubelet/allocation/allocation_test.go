package allocation

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func podWith(cpu string) *v1.Pod {
	always := v1.ContainerRestartPolicyAlways
	res := v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse(cpu)}}
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "u1", Generation: 1}, Spec: v1.PodSpec{
		InitContainers: []v1.Container{{Name: "side", RestartPolicy: &always, Resources: res}, {Name: "init", Resources: res}},
		Containers:     []v1.Container{{Name: "c", Resources: res}},
	}}
}

// TestAllocatedSurvivesRestart: the allocation and what containers were given are read
// back by a new manager (an agent restart); a resize not allocated shows as a difference
// and the allocated pod carries the old values; Remove forgets the pod on disk too.
func TestAllocatedSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	m, err := NewManager(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Allocate(podWith("100m")); err != nil {
		t.Fatal(err)
	}
	if err := m.SetActuated("u1", "c", podWith("100m").Spec.Containers[0].Resources); err != nil {
		t.Fatal(err)
	}
	m2, err := NewManager(dir)
	if err != nil {
		t.Fatal(err)
	}
	resized := podWith("300m")
	got, differs := m2.Allocated(resized)
	if !differs || got == resized {
		t.Fatal("a resize not allocated shows no difference")
	}
	for _, c := range []v1.Container{got.Spec.InitContainers[0], got.Spec.Containers[0]} {
		if q := c.Resources.Requests[v1.ResourceCPU]; q.String() != "100m" {
			t.Errorf("%s allocated %s, want 100m", c.Name, q.String())
		}
	}
	if q := got.Spec.InitContainers[1].Resources.Requests[v1.ResourceCPU]; q.String() != "300m" {
		t.Errorf("a regular init container is not resizable: %s", q.String())
	}
	if resized.Spec.Containers[0].Resources.Requests.Cpu().String() != "300m" {
		t.Error("the caller's pod was changed")
	}
	if a, ok := m2.Actuated("u1", "c"); !ok || a.Requests.Cpu().String() != "100m" {
		t.Errorf("actuated %v %v", a, ok)
	}
	if same, differs := m2.Allocated(podWith("0.1")); differs || same == nil {
		t.Error("100m and 0.1 are the same allocation")
	}
	m2.Remove("u1")
	m3, _ := NewManager(dir)
	if m3.Has("u1") {
		t.Error("removed pod still allocated after a restart")
	}
}

// TestCheckpointCorrupt: an unreadable checkpoint is an error, not a guess.
func TestCheckpointCorrupt(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, CheckpointFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewManager(dir); err == nil {
		t.Error("corrupt checkpoint accepted")
	}
}

// TestResizeConditions: upstream's condition rules: a non-Infeasible reason is Deferred;
// a changed reason or generation is a change (an event), the same is not; in-progress
// keeps its first generation; conditions come pending first.
func TestResizeConditions(t *testing.T) {
	m, _ := NewManager("")
	now := time.Unix(1000, 0)
	m.now = func() time.Time { return now }
	if !m.SetPending("u", "OutOfcpu", "no room", 2) {
		t.Error("first pending is not a change")
	}
	now = now.Add(time.Minute)
	if m.SetPending("u", "OutOfcpu", "no room", 2) {
		t.Error("same pending counted as a change")
	}
	if !m.SetPending("u", v1.PodReasonInfeasible, "never", 2) {
		t.Error("Deferred -> Infeasible is a change")
	}
	if gen, _ := m.SetInProgress("u", "", "", 2); gen != 2 {
		t.Errorf("generation %d", gen)
	}
	if gen, changed := m.SetInProgress("u", "", "", 3); gen != 2 || changed {
		t.Errorf("in progress again: generation %d changed %v", gen, changed)
	}
	if _, changed := m.SetInProgress("u", v1.PodReasonError, "boom", 3); !changed {
		t.Error("an error is a change")
	}
	conds := m.Conditions("u")
	if len(conds) != 2 || conds[0].Type != v1.PodResizePending || conds[0].Reason != v1.PodReasonInfeasible ||
		conds[1].Type != v1.PodResizeInProgress || conds[1].Reason != v1.PodReasonError || conds[1].ObservedGeneration != 2 {
		t.Fatalf("conditions %+v", conds)
	}
	m.ClearPending("u")
	if gen, ok := m.ClearInProgress("u"); !ok || gen != 2 {
		t.Errorf("cleared %d %v", gen, ok)
	}
	if len(m.Conditions("u")) != 0 {
		t.Error("conditions left")
	}
}

func TestDeferredReason(t *testing.T) {
	m, _ := NewManager("")
	m.SetPending("u", "OutOfmemory", "x", 1)
	if r, ok := m.Pending("u"); !ok || r != v1.PodReasonDeferred {
		t.Errorf("reason %q", r)
	}
}
