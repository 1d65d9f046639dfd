package status

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

func TestTraceRecordsTransitionsOnly(t *testing.T) {
	tr := NewTrace()
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u1"}}
	pending := v1.PodStatus{Phase: v1.PodPending, ContainerStatuses: []v1.ContainerStatus{{Name: "a", State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}}
	running := v1.PodStatus{Phase: v1.PodRunning, Conditions: []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionTrue}},
		ContainerStatuses: []v1.ContainerStatus{{Name: "a", State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}}}}
	tr.Record(p, pending)
	tr.Record(p, pending) // no change, no transition
	tr.Record(p, running)
	got := tr.Transitions("ns", "p")
	if len(got) != 2 {
		t.Fatalf("%d transitions, want 2: %+v", len(got), got)
	}
	if got[0].From != "" || got[0].To != "Pending |  | a:waiting(ContainerCreating) r0" || got[1].From != got[0].To ||
		got[1].To != "Running | Ready=True | a:running r0" || got[1].Since < got[0].Since {
		t.Errorf("transitions: %+v", got)
	}

	srv := httptest.NewServer(func() http.Handler {
		mux := http.NewServeMux()
		mux.Handle("GET /debug/pods/{namespace}/{name}/transitions", tr.Handler())
		return mux
	}())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/debug/pods/ns/p/transitions")
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Transitions []Transition }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Transitions) != 2 {
		t.Errorf("served %+v, %v", body, err)
	}
	resp.Body.Close()
	if resp, _ := http.Get(srv.URL + "/debug/pods/ns/unknown/transitions"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown pod: %s", resp.Status)
	}

	// A deleted pod's trace stays readable until keepGone newer ones are forgotten.
	tr.Forget("u1")
	if tr.Transitions("ns", "p") == nil {
		t.Fatal("trace gone right after Forget")
	}
	for i := 0; i < keepGone; i++ {
		q := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "q", UID: types.UID(rune('a'+i%26)) + types.UID(string(rune(i)))}}
		tr.Record(q, pending)
		tr.Forget(q.UID)
	}
	if tr.Transitions("ns", "p") != nil {
		t.Error("trace of a long-deleted pod kept forever")
	}
}

// replay rebuilds every entry's whole status: the first entry's, then each diff applied
// to the one before.
func replay(t *testing.T, trs []Transition) []v1.PodStatus {
	t.Helper()
	if len(trs) == 0 || trs[0].Status == nil || trs[0].Diff != nil {
		t.Fatalf("first entry has no whole status: %+v", trs)
	}
	cur := []byte(trs[0].Status)
	var first v1.PodStatus
	if err := json.Unmarshal(cur, &first); err != nil {
		t.Fatal(err)
	}
	out := []v1.PodStatus{first}
	for i, tr := range trs[1:] {
		if tr.Status != nil || len(tr.Diff) == 0 {
			t.Fatalf("entry %d: status %v, diff %s; want a diff only", i+1, tr.Status, tr.Diff)
		}
		var err error
		if cur, err = strategicpatch.StrategicMergePatch(cur, tr.Diff, v1.PodStatus{}); err != nil {
			t.Fatalf("entry %d: %v", i+1, err)
		}
		var st v1.PodStatus
		if err := json.Unmarshal(cur, &st); err != nil {
			t.Fatal(err)
		}
		out = append(out, st)
	}
	return out
}

// statusAt is a status that changes with i in and outside the summary.
func statusAt(i int) v1.PodStatus {
	st := v1.PodStatus{Phase: v1.PodRunning, ObservedGeneration: int64(i/3 + 1), StartTime: &metav1.Time{Time: time.Unix(100, 0)},
		Conditions: []v1.PodCondition{{Type: v1.PodReady, Status: v1.ConditionFalse, Reason: "ContainersNotReady", Message: fmt.Sprintf("m%d", i%2)},
			{Type: v1.PodScheduled, Status: v1.ConditionTrue}},
		ContainerStatuses: []v1.ContainerStatus{{Name: "a", RestartCount: int32(i / 2), State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}}}}
	if i%5 == 4 {
		st.Conditions[0] = v1.PodCondition{Type: v1.PodReady, Status: v1.ConditionTrue}
		st.ContainerStatuses = append(st.ContainerStatuses, v1.ContainerStatus{Name: "b", Ready: true})
	}
	return st
}

// Every change of the whole status is a transition: the first carries the whole status,
// later ones a diff that rebuilds it; a change outside the summary has From == To.
func TestTraceRecordsWholeStatus(t *testing.T) {
	tr := NewTrace()
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u1"}}
	var want []v1.PodStatus
	for i := 0; i < 12; i++ {
		tr.Record(p, statusAt(i))
		tr.Record(p, statusAt(i)) // the same again: nothing
		want = append(want, statusAt(i))
	}
	got := tr.Transitions("ns", "p")
	if len(got) != len(want) {
		t.Fatalf("%d transitions, want %d", len(got), len(want))
	}
	if got[1].From != got[1].To || !strings.Contains(string(got[1].Diff), `"message":"m1"`) {
		t.Errorf("a message-only change: %+v, diff %s", got[1], got[1].Diff)
	}
	for i, st := range replay(t, got) {
		if !apiequality.Semantic.DeepEqual(st, want[i]) {
			t.Errorf("entry %d rebuilds\n%+v\nwant\n%+v", i, st, want[i])
		}
	}
}

// Past maxTransitions the oldest entries go; the new first one gets the whole status.
func TestTraceBoundedKeepsWholeFirst(t *testing.T) {
	tr := NewTrace()
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u1"}}
	n := maxTransitions + 7
	for i := 0; i < n; i++ {
		tr.Record(p, statusAt(i))
	}
	got := tr.Transitions("ns", "p")
	if len(got) != maxTransitions {
		t.Fatalf("%d transitions, want %d", len(got), maxTransitions)
	}
	sts := replay(t, got)
	for i, st := range sts {
		if want := statusAt(n - maxTransitions + i); !apiequality.Semantic.DeepEqual(st, want) {
			t.Fatalf("entry %d rebuilds\n%+v\nwant\n%+v", i, st, want)
		}
	}
}

// The kubelet API serves the whole first status and the diffs.
func TestTraceHandlerServesStatusAndDiffs(t *testing.T) {
	tr := NewTrace()
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u1"}}
	tr.Record(p, statusAt(0))
	tr.Record(p, statusAt(4))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/debug/pods/ns/p/transitions", nil)
	req.SetPathValue("namespace", "ns")
	req.SetPathValue("name", "p")
	tr.Handler().ServeHTTP(rec, req)
	var body struct {
		Transitions []struct {
			From, To string
			Status   *struct{ Phase string }
			Diff     map[string]any
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Transitions) != 2 {
		t.Fatalf("served %s (%v)", rec.Body, err)
	}
	first, second := body.Transitions[0], body.Transitions[1]
	if first.Status == nil || first.Status.Phase != "Running" || first.Diff != nil || second.Status != nil || second.Diff["containerStatuses"] == nil {
		t.Errorf("served %s", rec.Body)
	}
}
