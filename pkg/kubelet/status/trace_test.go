package status

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
