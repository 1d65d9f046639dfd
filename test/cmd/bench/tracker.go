package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// podTrack is what the watcher saw of one pod: the first time (time.Now() taken by the
// watcher as the event arrived) each state was seen.
type podTrack struct {
	running, ready, deleted time.Time
	// terminated: the first time the main container was seen terminated, with its code.
	terminated time.Time
	exitCode   int32
	// restarts[i] is when restartCount i+1 was first seen.
	restarts []time.Time
	// containerID is the main container's runtime ID (its last one), without the scheme.
	containerID string
	ip          string
	uid         string
	last        *v1.Pod
}

// tracker watches every pod bound to one node and records when each state was first seen.
type tracker struct {
	client kubernetes.Interface
	ns     string
	node   string
	// alive reports an error once the node agent has exited.
	alive func() error

	mu      sync.Mutex
	pods    map[string]*podTrack
	changed chan struct{}
}

func newTracker(client kubernetes.Interface, ns, node string, alive func() error) *tracker {
	return &tracker{client: client, ns: ns, node: node, alive: alive, pods: map[string]*podTrack{}, changed: make(chan struct{})}
}

// run watches until ctx ends, re-watching from the last resource version when the watch
// closes and listing again when that version is gone.
func (t *tracker) run(ctx context.Context) {
	sel := fields.OneTermEqualSelector("spec.nodeName", t.node).String()
	api := t.client.CoreV1().Pods(t.ns)
	rv := ""
	for ctx.Err() == nil {
		if rv == "" {
			list, err := api.List(ctx, metav1.ListOptions{FieldSelector: sel})
			if err != nil {
				sleepCtx(ctx, time.Second)
				continue
			}
			now := time.Now()
			seen := map[string]bool{}
			for i := range list.Items {
				seen[list.Items[i].Name] = true
				t.observe(now, watch.Modified, &list.Items[i])
			}
			t.mu.Lock()
			for name, pt := range t.pods {
				if !seen[name] && pt.deleted.IsZero() {
					pt.deleted = now
				}
			}
			t.notifyLocked()
			t.mu.Unlock()
			rv = list.ResourceVersion
		}
		w, err := api.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv, AllowWatchBookmarks: true})
		if err != nil {
			if apierrors.IsGone(err) || apierrors.IsResourceExpired(err) {
				rv = ""
			}
			sleepCtx(ctx, 500*time.Millisecond)
			continue
		}
		for ev := range w.ResultChan() {
			now := time.Now()
			switch ev.Type {
			case watch.Error:
				if err := apierrors.FromObject(ev.Object); apierrors.IsGone(err) || apierrors.IsResourceExpired(err) {
					rv = ""
				}
			case watch.Bookmark:
				if m, err := meta.Accessor(ev.Object); err == nil {
					rv = m.GetResourceVersion()
				}
			default:
				if p, ok := ev.Object.(*v1.Pod); ok {
					rv = p.ResourceVersion
					t.observe(now, ev.Type, p)
				}
			}
			if rv == "" {
				break
			}
		}
		w.Stop()
	}
}

func (t *tracker) observe(now time.Time, typ watch.EventType, p *v1.Pod) {
	t.mu.Lock()
	defer t.mu.Unlock()
	pt := t.pods[p.Name]
	if pt == nil {
		pt = &podTrack{}
		t.pods[p.Name] = pt
	}
	pt.last, pt.uid = p, string(p.UID)
	if p.Status.PodIP != "" {
		pt.ip = p.Status.PodIP
	}
	if typ == watch.Deleted {
		if pt.deleted.IsZero() {
			pt.deleted = now
		}
		t.notifyLocked()
		return
	}
	if p.Status.Phase == v1.PodRunning && pt.running.IsZero() {
		pt.running = now
	}
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady && c.Status == v1.ConditionTrue && pt.ready.IsZero() {
			pt.ready = now
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name != "main" {
			continue
		}
		if _, id, ok := strings.Cut(cs.ContainerID, "://"); ok && id != "" {
			pt.containerID = id
		}
		if cs.State.Terminated != nil && pt.terminated.IsZero() {
			pt.terminated, pt.exitCode = now, cs.State.Terminated.ExitCode
		}
		for int(cs.RestartCount) > len(pt.restarts) {
			pt.restarts = append(pt.restarts, now)
		}
	}
	t.notifyLocked()
}

func (t *tracker) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// get returns a copy of what was seen of pod name (zero if nothing yet).
func (t *tracker) get(name string) podTrack {
	t.mu.Lock()
	defer t.mu.Unlock()
	if pt := t.pods[name]; pt != nil {
		c := *pt
		c.restarts = append([]time.Time(nil), pt.restarts...)
		return c
	}
	return podTrack{}
}

// waitPods waits until pred holds for every named pod; on timeout the error names the
// pods that did not get there and their last seen status.
func (t *tracker) waitPods(ctx context.Context, timeout time.Duration, what string, names []string, pred func(*podTrack) bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		t.mu.Lock()
		var missing []string
		for _, n := range names {
			pt := t.pods[n]
			if pt == nil || !pred(pt) {
				missing = append(missing, n)
			}
		}
		ch := t.changed
		var desc []string
		if len(missing) > 0 {
			for i, n := range missing {
				if i == 3 {
					desc = append(desc, fmt.Sprintf("... and %d more", len(missing)-3))
					break
				}
				if pt := t.pods[n]; pt != nil && pt.last != nil {
					desc = append(desc, n+": "+describe(pt.last))
				} else {
					desc = append(desc, n+": never seen by the watch")
				}
			}
		}
		t.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-tick.C:
			if err := t.alive(); err != nil {
				return fmt.Errorf("waiting for %s: %w", what, err)
			}
		case <-deadline.C:
			return fmt.Errorf("timed out after %v waiting for %s (%d of %d pods not there): %s",
				timeout, what, len(missing), len(names), strings.Join(desc, "; "))
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
	}
}

// describe is a one-line summary of a pod's status for error messages.
func describe(p *v1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s", p.Status.Phase)
	if p.DeletionTimestamp != nil {
		b.WriteString(" deleting")
	}
	conds := append([]v1.PodCondition(nil), p.Status.Conditions...)
	sort.Slice(conds, func(i, j int) bool { return conds[i].Type < conds[j].Type })
	for _, c := range conds {
		fmt.Fprintf(&b, " %s=%s", c.Type, c.Status)
	}
	for _, cs := range p.Status.ContainerStatuses {
		state := "none"
		switch {
		case cs.State.Running != nil:
			state = "running"
		case cs.State.Terminated != nil:
			state = fmt.Sprintf("terminated(%s,%d)", cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
		case cs.State.Waiting != nil:
			state = fmt.Sprintf("waiting(%s: %s)", cs.State.Waiting.Reason, cs.State.Waiting.Message)
		}
		fmt.Fprintf(&b, " [%s restarts=%d %s]", cs.Name, cs.RestartCount, state)
	}
	return b.String()
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
