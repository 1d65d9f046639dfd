package kit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/jsonmergepatch"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Step is one distinct status of a traced pod.
type Step struct {
	// Time is when the watch delivered this status.
	Time time.Time
	// Event is ADDED, MODIFIED or DELETED.
	Event string
	// Pod is the pod as seen then (whole status included).
	Pod *v1.Pod
	// Diff is a JSON merge patch (RFC 7386) from the previous step's status to this one,
	// with conditions keyed by type and container statuses by name, so it names what
	// changed ("" for the first step).
	Diff string
}

// Trace records every distinct status of one pod (by namespace and name) from the API,
// in order. WaitFor consumes it: each wait looks only at steps after the one the
// previous wait matched, so successive waits assert an order of transitions.
type Trace struct {
	Namespace, Name string

	mu      sync.Mutex
	steps   []Step
	last    []byte        // keyed JSON of the last step's status
	changed chan struct{} // closed when a step is added
	cursor  int           // steps before it were matched by an earlier WaitFor
	stop    chan struct{}
	start   time.Time
}

// newTrace starts watching namespace/name (the pod need not exist yet).
func newTrace(client kubernetes.Interface, namespace, name string) *Trace {
	t := &Trace{Namespace: namespace, Name: name, changed: make(chan struct{}), stop: make(chan struct{}), start: time.Now()}
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	pods := client.CoreV1().Pods(namespace)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return pods.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return pods.Watch(ctx, o)
		},
	}
	_, ctrl := cache.NewInformerWithOptions(cache.InformerOptions{
		// The wrapper tells the reflector whether the client can stream lists (a fake cannot).
		ListerWatcher: cache.ToListWatcherWithWatchListSemantics(lw, client),
		ObjectType:    &v1.Pod{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(o any) { t.add("ADDED", o) },
			UpdateFunc: func(_, o any) { t.add("MODIFIED", o) },
			DeleteFunc: func(o any) { t.add("DELETED", o) },
		},
	})
	go ctrl.Run(t.stop)
	// Synced: the watch is open, so every later change of the pod is seen.
	synced, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cache.WaitForCacheSync(synced.Done(), ctrl.HasSynced)
	return t
}

// Stop ends the watch; the steps stay.
func (t *Trace) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-t.stop:
	default:
		close(t.stop)
	}
}

func (t *Trace) add(event string, o any) {
	if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = d.Obj
	}
	p, ok := o.(*v1.Pod)
	if !ok {
		return
	}
	cur, err := keyedStatus(&p.Status)
	if err != nil {
		cur = []byte(fmt.Sprintf("%q", err.Error()))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if event != "DELETED" && len(t.steps) > 0 && t.steps[len(t.steps)-1].Event != "DELETED" && string(cur) == string(t.last) {
		return // metadata or spec changed, not the status
	}
	s := Step{Time: time.Now(), Event: event, Pod: p.DeepCopy()}
	if len(t.steps) > 0 {
		patch, err := jsonmergepatch.CreateThreeWayJSONMergePatch(t.last, cur, t.last)
		if err != nil {
			s.Diff = "(no diff: " + err.Error() + ")"
		} else {
			s.Diff = string(patch)
		}
	}
	t.steps = append(t.steps, s)
	t.last = cur
	close(t.changed)
	t.changed = make(chan struct{})
}

// keyedStatus is the status as JSON with its lists keyed (conditions by type, container
// statuses by name), so a merge patch between two of them names the one entry that
// changed instead of repeating the whole list.
func keyedStatus(s *v1.PodStatus) ([]byte, error) {
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	for field, key := range map[string]string{"conditions": "type", "containerStatuses": "name",
		"initContainerStatuses": "name", "ephemeralContainerStatuses": "name"} {
		list, ok := m[field].([]any)
		if !ok {
			continue
		}
		byKey := map[string]any{}
		for _, e := range list {
			if em, ok := e.(map[string]any); ok {
				byKey[fmt.Sprint(em[key])] = em
			}
		}
		m[field] = byKey
	}
	return json.Marshal(m)
}

// Steps returns a copy of the steps so far.
func (t *Trace) Steps() []Step {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Step(nil), t.steps...)
}

// WaitFor waits for a step after the last one an earlier WaitFor matched that want
// matches, and returns its pod. It fails when ctx ends or the pod is deleted first; the
// error holds the whole trace: every step with its time, the first status whole and
// each later one as a diff, and a one-line summary of each.
func (t *Trace) WaitFor(ctx context.Context, want Matcher) (*v1.Pod, error) {
	t.mu.Lock()
	from := t.cursor
	t.mu.Unlock()
	for {
		t.mu.Lock()
		for i := t.cursor; i < len(t.steps); i++ {
			s := t.steps[i]
			if s.Event != "DELETED" && want.Match(s.Pod) {
				t.cursor = i + 1
				t.mu.Unlock()
				return s.Pod, nil
			}
			if s.Event == "DELETED" {
				t.cursor = i + 1
				t.mu.Unlock()
				return nil, t.failure(want, from, "the pod was deleted first")
			}
		}
		t.cursor = len(t.steps)
		changed := t.changed
		t.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, t.failure(want, from, ctx.Err().Error())
		}
	}
}

// failure is WaitFor's error: what was wanted, why it gave up, and the whole trace.
func (t *Trace) failure(want Matcher, from int, why string) error {
	return fmt.Errorf("pod %s/%s: no status matched %s (%s); waited from step #%d. The trace:\n%s",
		t.Namespace, t.Name, want, why, from, t.String())
}

// String is the whole trace, one step per block: number, time (and since the trace
// began), event, one-line summary, then the whole status (first step) or the diff.
func (t *Trace) String() string {
	steps := t.Steps()
	if len(steps) == 0 {
		return "  (no status seen)\n"
	}
	var b strings.Builder
	for i, s := range steps {
		fmt.Fprintf(&b, "  #%d %s (+%.3fs) %s: %s\n", i, s.Time.Format("15:04:05.000"), s.Time.Sub(t.start).Seconds(), s.Event, Summary(s.Pod))
		switch {
		case i == 0:
			whole, _ := json.Marshal(s.Pod.Status)
			fmt.Fprintf(&b, "     status: %s\n", whole)
		case s.Diff != "" && s.Diff != "{}":
			fmt.Fprintf(&b, "     changed: %s\n", s.Diff)
		}
	}
	return b.String()
}
