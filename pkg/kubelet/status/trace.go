package status

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"

	kmetrics "github.com/minikubelet/minikubelet/pkg/kubelet/metrics"
)

// Transition is one observed change of a pod's status, as the node derived it.
type Transition struct {
	// At is wall-clock time; Since is the monotonic time since the pod was first seen.
	At    time.Time     `json:"at"`
	Since time.Duration `json:"sinceFirstSeen"`
	// From and To are the summaries (Summary) before and after; equal when only details
	// outside the summary changed.
	From string `json:"from"`
	To   string `json:"to"`
	// Status is the whole status (a v1.PodStatus as JSON, kept encoded: a node's traces
	// are read rarely), on the first entry only; every later entry has Diff instead, the
	// strategic merge patch (as the API server applies to a pod's status) from the previous
	// entry's status to this one's.
	Status json.RawMessage `json:"status,omitempty"`
	Diff   json.RawMessage `json:"diff,omitempty"`
}

// maxTransitions bounds each pod's trace; older entries are dropped first.
const maxTransitions = 200

// Trace records every status transition of every pod (bounded) and observes each pod's
// time from first seen to Running and to Ready (pkg/kubelet/metrics).
type Trace struct {
	mu   sync.Mutex
	pods map[types.UID]*podTrace
	// byName finds the current pod of a namespace/name.
	byName map[string]types.UID
	// gone: pods forgotten, oldest first; their traces stay readable for a while.
	gone []types.UID
}

// keepGone is how many traces of deleted pods stay readable.
const keepGone = 256

// podTrace holds one full status (the first entry's) and diffs, plus the newest status as
// JSON to diff the next one against.
type podTrace struct {
	mu             sync.Mutex
	first          time.Time // carries the monotonic clock reading
	last           string
	lastJSON       []byte
	entries        []Transition
	running, ready bool
}

// NewTrace returns an empty trace.
func NewTrace() *Trace {
	return &Trace{pods: map[types.UID]*podTrace{}, byName: map[string]types.UID{}}
}

// Record notes st as pod's newest status; any change of it is a transition.
func (t *Trace) Record(pod *v1.Pod, st v1.PodStatus) {
	if t == nil {
		return
	}
	now := time.Now()
	cur, err := json.Marshal(st)
	if err != nil {
		return
	}
	t.mu.Lock()
	pt := t.pods[pod.UID]
	if pt == nil {
		pt = &podTrace{first: now}
		t.pods[pod.UID] = pt
		t.byName[pod.Namespace+"/"+pod.Name] = pod.UID
	}
	t.mu.Unlock()
	// Diffs are computed under the pod's own lock only: other pods' records go on.
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if bytes.Equal(cur, pt.lastJSON) {
		return
	}
	tr := Transition{At: now, Since: now.Sub(pt.first), From: pt.last, To: Summary(st)}
	if pt.lastJSON == nil {
		tr.Status = cur
	} else {
		diff, err := strategicpatch.CreateTwoWayMergePatch(pt.lastJSON, cur, v1.PodStatus{})
		if err != nil || string(diff) == "{}" {
			return // no change the API would see
		}
		tr.Diff = diff
	}
	if len(pt.entries) == maxTransitions {
		pt.dropOldest()
	}
	pt.entries = append(pt.entries, tr)
	pt.last, pt.lastJSON = tr.To, cur
	pt.observeStart(now, st)
}

// dropOldest drops the first entry; the next one becomes first and so gets the whole
// status, its diff applied to the dropped one's.
func (pt *podTrace) dropOldest() {
	if len(pt.entries) > 1 && pt.entries[0].Status != nil {
		next := &pt.entries[1]
		if full, err := strategicpatch.StrategicMergePatch(pt.entries[0].Status, next.Diff, v1.PodStatus{}); err == nil {
			next.Status, next.Diff = full, nil
		}
	}
	pt.entries = append(pt.entries[:0], pt.entries[1:]...)
}

// observeStart feeds the start histograms the first time the pod is Running and Ready.
func (pt *podTrace) observeStart(now time.Time, st v1.PodStatus) {
	if !pt.running && st.Phase == v1.PodRunning {
		pt.running = true
		kmetrics.ObserveRunning(now.Sub(pt.first))
	}
	if !pt.ready {
		for _, c := range st.Conditions {
			if c.Type == v1.PodReady && c.Status == v1.ConditionTrue {
				pt.ready = true
				kmetrics.ObserveReady(now.Sub(pt.first))
			}
		}
	}
}

// Transitions returns the trace of the current pod namespace/name (nil if unknown).
func (t *Trace) Transitions(namespace, name string) []Transition {
	t.mu.Lock()
	pt := t.pods[t.byName[namespace+"/"+name]]
	t.mu.Unlock()
	if pt == nil {
		return nil
	}
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return append([]Transition(nil), pt.entries...)
}

// Forget drops a pod's trace.
func (t *Trace) Forget(uid types.UID) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	pt, ok := t.pods[uid]
	if !ok {
		return
	}
	// A forgotten pod records nothing more: only its entries stay, to be read.
	pt.mu.Lock()
	pt.lastJSON = nil
	pt.mu.Unlock()
	t.gone = append(t.gone, uid)
	if len(t.gone) <= keepGone {
		return
	}
	old := t.gone[0]
	t.gone = t.gone[1:]
	delete(t.pods, old)
	for k, v := range t.byName {
		if v == old {
			delete(t.byName, k)
		}
	}
}

// Handler serves /debug/pods/{namespace}/{name}/transitions as JSON.
func (t *Trace) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ns, name := r.PathValue("namespace"), r.PathValue("name")
		tr := t.Transitions(ns, name)
		if tr == nil {
			http.Error(w, fmt.Sprintf("pod %s/%s not known to this node", ns, name), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Namespace   string       `json:"namespace"`
			Name        string       `json:"name"`
			Transitions []Transition `json:"transitions"`
		}{ns, name, tr})
	})
}

// Summary renders what a status transition is made of: phase (with the pod's reason),
// each condition's status and reason (sorted), each container's state with reason and
// restart count. The e2e transition suite compares the same rendering.
func Summary(st v1.PodStatus) string { return summary(st, false) }

// summary can also show each container's last termination reason ("/last=Error").
func summary(st v1.PodStatus, withLast bool) string {
	conds := make([]string, 0, len(st.Conditions))
	for _, c := range st.Conditions {
		s := fmt.Sprintf("%s=%s", c.Type, c.Status)
		if c.Reason != "" {
			s += "(" + c.Reason + ")"
		}
		conds = append(conds, s)
	}
	sort.Strings(conds)
	var cs []string
	for _, list := range [][]v1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses} {
		for _, c := range list {
			s := "none"
			switch {
			case c.State.Running != nil:
				s = "running"
			case c.State.Terminated != nil:
				s = "terminated(" + c.State.Terminated.Reason + ")"
			case c.State.Waiting != nil:
				s = "waiting(" + c.State.Waiting.Reason + ")"
			}
			if withLast && c.LastTerminationState.Terminated != nil {
				s += "/last=" + c.LastTerminationState.Terminated.Reason
			}
			cs = append(cs, fmt.Sprintf("%s:%s r%d", c.Name, s, c.RestartCount))
		}
	}
	phase := string(st.Phase)
	if st.Reason != "" {
		phase += "(" + st.Reason + ")"
	}
	return fmt.Sprintf("%s | %s | %s", phase, strings.Join(conds, " "), strings.Join(cs, " "))
}
