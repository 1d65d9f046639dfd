package status

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func running(ready bool) v1.PodStatus {
	st := v1.ConditionFalse
	if ready {
		st = v1.ConditionTrue
	}
	return v1.PodStatus{Phase: v1.PodRunning, Conditions: []v1.PodCondition{{Type: v1.PodReady, Status: st}}}
}

func patches(c *fake.Clientset) []k8stesting.PatchAction {
	var out []k8stesting.PatchAction
	for _, a := range c.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok {
			out = append(out, p)
		}
	}
	return out
}

func TestManagerWritesNewestStatusOnce(t *testing.T) {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1"}}
	c := fake.NewSimpleClientset(p)
	m := NewManager(c)
	ctx := context.Background()

	m.SetStatus(p, v1.PodStatus{Phase: v1.PodPending})
	m.SetStatus(p, running(false))
	m.SetStatus(p, running(true)) // a burst: only the newest is written
	if err := m.Flush(ctx, p.UID); err != nil {
		t.Fatal(err)
	}
	ps := patches(c)
	if len(ps) != 1 || ps[0].GetSubresource() != "status" || ps[0].GetPatchType() != "application/strategic-merge-patch+json" {
		t.Fatalf("patches %v, want one strategic patch of status", ps)
	}
	var body struct {
		Metadata struct{ UID string } `json:"metadata"`
		Status   v1.PodStatus         `json:"status"`
	}
	if err := json.Unmarshal(ps[0].GetPatch(), &body); err != nil {
		t.Fatal(err)
	}
	if body.Metadata.UID != "uid-1" || body.Status.Phase != v1.PodRunning || len(body.Status.Conditions) != 1 || body.Status.Conditions[0].Status != v1.ConditionTrue {
		t.Errorf("patch %s", ps[0].GetPatch())
	}

	// The same status again is not written again.
	m.SetStatus(p, running(true))
	if err := m.Flush(ctx, p.UID); err != nil {
		t.Fatal(err)
	}
	if n := len(patches(c)); n != 1 {
		t.Errorf("%d patches after an identical status, want still 1", n)
	}
}

func TestManagerKeepsOthersConditions(t *testing.T) {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"},
		Status: v1.PodStatus{Conditions: []v1.PodCondition{{Type: "example.com/gate", Status: v1.ConditionTrue}}}}
	c := fake.NewSimpleClientset(p)
	m := NewManager(c)
	m.SetStatus(p, running(true)) // ours has no gate condition
	if err := m.Flush(context.Background(), p.UID); err != nil {
		t.Fatal(err)
	}
	got, err := c.CoreV1().Pods("ns").Get(context.Background(), "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if findCondition(got.Status.Conditions, "example.com/gate") == nil || findCondition(got.Status.Conditions, v1.PodReady) == nil {
		t.Errorf("conditions after write: %v", got.Status.Conditions)
	}
}

func TestManagerDropsGoneOrReplacedPods(t *testing.T) {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "old"}}
	c := fake.NewSimpleClientset(&v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "new"}})
	m := NewManager(c)
	m.SetStatus(p, running(true))
	if err := m.Flush(context.Background(), p.UID); err != nil {
		t.Fatal(err)
	}
	if n := len(patches(c)); n != 0 {
		t.Errorf("patched a pod with another UID (%d patches)", n)
	}
	if _, ok := m.Status(p.UID); ok {
		t.Error("status of a replaced pod still cached")
	}

	gone := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "gone", Namespace: "ns", UID: "g"}}
	m.SetStatus(gone, running(true))
	if err := m.Flush(context.Background(), gone.UID); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Status(gone.UID); ok {
		t.Error("status of a deleted pod still cached")
	}
}

func TestManagerRetriesAfterErrorsWithoutLosingTheNewest(t *testing.T) {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}}
	c := fake.NewSimpleClientset(p)
	fail := true
	c.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if fail {
			return true, nil, context.DeadlineExceeded
		}
		return false, nil, nil
	})
	m := NewManager(c)
	m.SetStatus(p, running(false))
	if err := m.Flush(context.Background(), p.UID); err == nil {
		t.Fatal("want the API error")
	}
	m.SetStatus(p, running(true))
	fail = false
	if err := m.Flush(context.Background(), p.UID); err != nil {
		t.Fatal(err)
	}
	got, _ := c.CoreV1().Pods("ns").Get(context.Background(), "p", metav1.GetOptions{})
	if r := findCondition(got.Status.Conditions, v1.PodReady); r == nil || r.Status != v1.ConditionTrue {
		t.Errorf("after retry: %v", got.Status.Conditions)
	}
}

// A static pod's status is written to its mirror pod (UID precondition of the mirror),
// waits while there is none, and is written again to a recreated mirror.
func TestManagerWritesStaticPodStatusToMirror(t *testing.T) {
	static := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-n", Namespace: "default", UID: "static-hash",
		Annotations: map[string]string{annotationConfigSource: "file"}}}
	c := fake.NewSimpleClientset()
	m := NewManager(c)
	ctx := context.Background()
	m.SetStatus(static, running(true))
	if err := m.Flush(ctx, static.UID); err != nil {
		t.Fatal(err)
	}
	if len(patches(c)) != 0 {
		t.Fatal("patched without a mirror pod")
	}
	if _, ok := m.Status(static.UID); !ok {
		t.Fatal("status dropped while the mirror pod does not exist yet")
	}
	mirror := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-n", Namespace: "default", UID: "mirror-1",
		Annotations: map[string]string{annotationConfigMirror: "static-hash"}}}
	if _, err := c.CoreV1().Pods("default").Create(ctx, mirror, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	m.Rewrite(static.UID)
	if err := m.Flush(ctx, static.UID); err != nil {
		t.Fatal(err)
	}
	ps := patches(c)
	if len(ps) != 1 || ps[0].GetName() != "web-n" {
		t.Fatalf("patches %v", ps)
	}
	var body struct {
		Metadata struct{ UID string } `json:"metadata"`
	}
	_ = json.Unmarshal(ps[0].GetPatch(), &body)
	if body.Metadata.UID != "mirror-1" {
		t.Errorf("precondition UID %q, want the mirror's", body.Metadata.UID)
	}
	// A recreated mirror gets the status again after Rewrite.
	_ = c.CoreV1().Pods("default").Delete(ctx, "web-n", metav1.DeleteOptions{})
	mirror.UID = "mirror-2"
	if _, err := c.CoreV1().Pods("default").Create(ctx, mirror, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	m.Rewrite(static.UID)
	if err := m.Flush(ctx, static.UID); err != nil {
		t.Fatal(err)
	}
	if ps := patches(c); len(ps) != 2 {
		t.Errorf("recreated mirror not written: %d patches", len(ps))
	}
}

// The Node authorizer forbids reading a pod deleted a moment ago (or bound a moment ago):
// not an error, and the status stays pending until it can be written or is forgotten.
func TestManagerForbiddenIsRetriedQuietly(t *testing.T) {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}}
	c := fake.NewSimpleClientset(p)
	forbid := true
	c.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if forbid {
			return true, nil, nodeForbidden("p")
		}
		return false, nil, nil
	})
	m := NewManager(c)
	m.SetStatus(p, running(true))
	if err := m.Flush(context.Background(), p.UID); err != nil {
		t.Fatalf("forbidden read reported as %v", err)
	}
	if len(patches(c)) != 0 {
		t.Fatal("patched a pod it could not read")
	}
	forbid = false
	if err := m.Flush(context.Background(), p.UID); err != nil || len(patches(c)) != 1 {
		t.Fatalf("after access returned: err %v, %d patches", err, len(patches(c)))
	}
}

// Another writer's change to what the node owns is undone (the node lifecycle controller
// marks the pods of a NotReady node not Ready); the API echoing what was written is not
// written again.
func TestManagerReconcilesForeignChanges(t *testing.T) {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}}
	c := fake.NewSimpleClientset(p)
	m := NewManager(c)
	ctx := context.Background()
	m.SetStatus(p, running(true))
	if err := m.Flush(ctx, p.UID); err != nil {
		t.Fatal(err)
	}
	api, err := c.CoreV1().Pods("ns").Get(ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m.Reconcile(api) // our own write coming back
	if err := m.Flush(ctx, p.UID); err != nil {
		t.Fatal(err)
	}
	if n := len(patches(c)); n != 1 {
		t.Fatalf("%d patches after our own write came back, want 1", n)
	}
	api.Status = running(false)
	api.Status.Conditions = append(api.Status.Conditions, v1.PodCondition{Type: "example.com/gate", Status: v1.ConditionTrue})
	if api, err = c.CoreV1().Pods("ns").UpdateStatus(ctx, api, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	m.Reconcile(api)
	if err := m.Flush(ctx, p.UID); err != nil {
		t.Fatal(err)
	}
	got, _ := c.CoreV1().Pods("ns").Get(ctx, "p", metav1.GetOptions{})
	if len(patches(c)) != 2 || len(got.Status.Conditions) != 2 || got.Status.Conditions[1].Status != v1.ConditionTrue || got.Status.Conditions[0].Type != "example.com/gate" {
		t.Errorf("after a foreign Ready=False: %d patches, conditions %v; want the gate kept (first, as upstream orders them) and Ready=True back", len(patches(c)), got.Status.Conditions)
	}
}

// observedGeneration is the generation of the pod the status was set for, as upstream's
// SetPodStatus: a status that differs only by it is written, and it never goes back.
func TestManagerObservedGeneration(t *testing.T) {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1", Generation: 1}}
	c := fake.NewSimpleClientset(p)
	m := NewManager(c)
	ctx := context.Background()
	observed := func(wantGen int64, wantPatches int) {
		t.Helper()
		if err := m.Flush(ctx, p.UID); err != nil {
			t.Fatal(err)
		}
		st, _ := m.Status(p.UID)
		ps := patches(c)
		if st.ObservedGeneration != wantGen || len(ps) != wantPatches {
			t.Fatalf("observedGeneration %d with %d patches, want %d with %d", st.ObservedGeneration, len(ps), wantGen, wantPatches)
		}
		api, err := c.CoreV1().Pods("ns").Get(ctx, "p", metav1.GetOptions{})
		if err != nil || api.Status.ObservedGeneration != wantGen {
			t.Fatalf("API holds observedGeneration %d (%v), want %d", api.Status.ObservedGeneration, err, wantGen)
		}
	}
	m.SetStatus(p, running(true))
	observed(1, 1)

	// A spec update (generation 2) with the same status otherwise: written.
	p2 := p.DeepCopy()
	p2.Generation = 2
	m.SetStatus(p2, running(true))
	observed(2, 2)
	if tr := m.Trace.Transitions("ns", "p"); len(tr) != 2 || tr[1].From != tr[1].To || !strings.Contains(string(tr[1].Diff), `"observedGeneration":2`) {
		t.Errorf("trace does not show the generation change: %+v", tr)
	}

	// A status set for an older copy of the pod does not take it back.
	m.SetStatus(p, running(false))
	observed(2, 3)

	// Without a status held, the API's observedGeneration is the floor.
	m2 := NewManager(nil)
	old := p.DeepCopy()
	old.Status.ObservedGeneration = 5
	m2.SetStatus(old, running(true))
	if st, _ := m2.Status(p.UID); st.ObservedGeneration != 5 {
		t.Errorf("observedGeneration %d, want the API's 5", st.ObservedGeneration)
	}
}

// TestManagerRewriteDuringWriteToReplacedMirror: a mirror pod replaced while a write to
// the old one is in flight (the API refuses it: the patch names the old UID) still gets
// the status: the write that failed must not count for the Rewrite the new mirror asked.
func TestManagerRewriteDuringWriteToReplacedMirror(t *testing.T) {
	static := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-n", Namespace: "default", UID: "static-hash",
		Annotations: map[string]string{annotationConfigSource: "file"}}}
	mirror := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-n", Namespace: "default", UID: "mirror-1",
		Annotations: map[string]string{annotationConfigMirror: "static-hash"}}}
	c := fake.NewSimpleClientset(mirror)
	m := NewManager(c)
	ctx := context.Background()
	refused := false
	c.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if refused {
			return false, nil, nil
		}
		refused = true
		m.Rewrite(static.UID) // the new mirror appears while this write is in flight
		return true, nil, apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, "web-n", nil)
	})
	m.SetStatus(static, running(true))
	_ = m.Flush(ctx, static.UID) // refused
	if err := m.Flush(ctx, static.UID); err != nil {
		t.Fatal(err)
	}
	if ps := patches(c); len(ps) != 2 {
		t.Errorf("%d patches; want the refused one and a second for the new mirror", len(ps))
	}
}

// A write is computed against the informer's copy instead of a GET only while that copy
// is the version this manager last read or wrote; a copy behind it or ahead of it (another
// writer's change) makes the manager read the pod. A field removed from the status is
// removed in the API either way.
func TestManagerReadsItsLastVersionFromTheInformer(t *testing.T) {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u", ResourceVersion: "1"}}
	c := fake.NewSimpleClientset(p)
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	// The fake keeps no resource versions: each write's answer gets the next one, and the
	// stored pod too.
	rv := 1
	react := k8stesting.ObjectReaction(c.Tracker())
	c.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		_, obj, err := react(a)
		if err != nil {
			return true, nil, err
		}
		rv++
		out := obj.(*v1.Pod).DeepCopy()
		out.ResourceVersion = strconv.Itoa(rv)
		return true, out, c.Tracker().Update(gvr, out, "ns")
	})
	informerRV := ""
	m := NewManager(c)
	m.Cached = func(ns, name string) *v1.Pod {
		obj, err := c.Tracker().Get(gvr, ns, name)
		if err != nil || informerRV == "" {
			return nil
		}
		cp := obj.(*v1.Pod).DeepCopy()
		cp.ResourceVersion = informerRV
		return cp
	}
	ctx := context.Background()
	gets := func() int {
		n := 0
		for _, a := range c.Actions() {
			if a.GetVerb() == "get" {
				n++
			}
		}
		return n
	}
	write := func(step string, st v1.PodStatus, wantGets int) {
		t.Helper()
		m.SetStatus(p, st)
		if err := m.Flush(ctx, p.UID); err != nil {
			t.Fatal(err)
		}
		if got := gets(); got != wantGets {
			t.Errorf("%s: %d GETs in all, want %d", step, got, wantGets)
		}
	}
	msg := running(false)
	msg.Message = "starting"
	write("first write, nothing in the informer", msg, 1)
	informerRV = "2" // the informer has our write
	write("the informer holds our write", running(true), 1)
	if got, _ := c.CoreV1().Pods("ns").Get(ctx, "p", metav1.GetOptions{}); got.Status.Message != "" || got.Status.Conditions[0].Status != v1.ConditionTrue {
		t.Errorf("after a write against the informer's copy: %+v; want the message removed, Ready", got.Status)
	}
	// informerRV is 2, the last write 3: behind. (The check above made a GET too.)
	write("the informer behind our last write", running(false), 3)
	informerRV = "9" // another writer's change after ours
	write("the informer ahead of our last write", running(true), 4)
}

// A pod the node may no longer read (the Node authorizer's answer once it is deleted)
// and which the informer has dropped is gone: forgotten, as on NotFound.
func TestManagerForgetsForbiddenPodTheInformerDropped(t *testing.T) {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}}
	c := fake.NewSimpleClientset(p)
	c.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, nodeForbidden("p")
	})
	m := NewManager(c)
	inInformer := true
	m.Cached = func(ns, name string) *v1.Pod {
		if !inInformer {
			return nil
		}
		return p // without the known resource version: the manager reads the API
	}
	m.SetStatus(p, running(true))
	if err := m.Flush(context.Background(), p.UID); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Status(p.UID); !ok {
		t.Fatal("forgot a pod the informer still holds (forbidden only briefly, just bound)")
	}
	inInformer = false
	m.Rewrite(p.UID)
	if err := m.Flush(context.Background(), p.UID); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Status(p.UID); ok {
		t.Fatal("kept the status of a pod that is forbidden and gone from the informer")
	}
}

// A write that failed is not tried again on every other pod's change: on the retry tick,
// or when its own status changes. (A batch of deleted pods otherwise read each other's
// forbidden pods over and over while the API server was removing them.)
func TestManagerWakeWritesOnlyNewStatuses(t *testing.T) {
	stuck := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "stuck", Namespace: "ns", UID: "s"}}
	busy := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "busy", Namespace: "ns", UID: "b"}}
	c := fake.NewSimpleClientset(stuck, busy)
	c.PrependReactor("get", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.(k8stesting.GetAction).GetName() == "stuck" {
			return true, nil, nodeForbidden("stuck")
		}
		return false, nil, nil
	})
	m := NewManager(c)
	m.retryEvery = time.Hour
	runManager(t, m)
	count := func(verb, name string) int {
		n := 0
		for _, a := range c.Actions() {
			if a.GetVerb() == verb && a.(interface{ GetName() string }).GetName() == name {
				n++
			}
		}
		return n
	}
	m.SetStatus(stuck, running(false))
	waitFor(t, "the stuck pod read once", func() bool { return count("get", "stuck") == 1 })
	for i := range 3 {
		st := running(i%2 == 0)
		st.Message = strconv.Itoa(i)
		m.SetStatus(busy, st)
		waitFor(t, "the busy pod's write "+strconv.Itoa(i+1), func() bool { return count("patch", "busy") == i+1 })
	}
	if n := count("get", "stuck"); n != 1 {
		t.Errorf("the stuck pod was read %d times while the other pod changed, want 1", n)
	}
	m.SetStatus(stuck, running(true))
	waitFor(t, "the stuck pod read again for its new status", func() bool { return count("get", "stuck") == 2 })
}

// nodeForbidden is the Node authorizer's answer to reading a pod not bound to the node
// (deleted a moment ago, or bound a moment ago).
func nodeForbidden(name string) error {
	return apierrors.NewForbidden(v1.Resource("pods"), name, errors.New("no relationship found between node 'n' and this object"))
}

// runManager runs m's writer until the test ends.
func runManager(t *testing.T, m *Manager) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// A write that failed is tried again as soon as the informer shows the pod changed,
// without waiting for the retry tick.
func TestManagerRetriesFailedWriteWhenThePodChanges(t *testing.T) {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}}
	c := fake.NewSimpleClientset(p)
	var forbid atomic.Bool
	forbid.Store(true)
	c.PrependReactor("get", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if forbid.Load() {
			return true, nil, nodeForbidden("p")
		}
		return false, nil, nil
	})
	m := NewManager(c)
	m.retryEvery = time.Hour
	m.Cached = func(string, string) *v1.Pod { return p }
	runManager(t, m)
	m.SetStatus(p, running(true))
	waitFor(t, "the forbidden read", func() bool { return len(c.Actions()) == 1 })
	forbid.Store(false)
	m.Reconcile(p)
	waitFor(t, "the status written after the pod changed", func() bool { return len(patches(c)) == 1 })
}
