package runtimecache

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// exitRetries: containerd announces an exit a little before its CRI plugin's own state
// shows it, so an exit the runtime does not show yet is asked about again after these
// delays; after the last one the next relist repairs whatever is left.
var exitRetries = []time.Duration{10 * time.Millisecond, 30 * time.Millisecond, 100 * time.Millisecond,
	300 * time.Millisecond, time.Second, 3 * time.Second}

// Event takes one runtime event (cri.Client.WatchEvents). It never blocks on the runtime.
func (c *Cache) Event(ev cri.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ev.Kind {
	case cri.EventSubscribed:
		c.kickLocked() // events may have been lost before this subscription
	case cri.EventUnavailable:
		c.noEvents = true
		c.kickLocked() // Run takes up the shorter period
	case cri.EventExit, cri.EventExitRecorded:
		if c.objs[ev.ID] == nil {
			c.kickLocked() // an object we have not seen yet: only a list can place it
			return
		}
		o := c.objs[ev.ID]
		if o.stopping > 0 || o.final() {
			return // our own stop (read when the call returns), or the exit is known
		}
		// An exit starts the looks; its record (which may come first, or alone if the
		// exit was lost) makes the next look due now, with the short delays again after it.
		if _, ok := c.looks[ev.ID]; ok && ev.Kind == cri.EventExit {
			return
		}
		c.looks[ev.ID] = look{at: c.cfg.Clock.Now()}
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

// kickLocked asks for a full relist; marking the cache as wanting one lets a pending kick
// for exits turn into a relist too.
func (c *Cache) kickLocked() {
	c.wantRelist = true
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run relists at once and then every RelistPeriod (PollPeriod once the runtime turns out
// to have no event stream), and handles the exits Event queued, until ctx ends.
func (c *Cache) Run(ctx context.Context) {
	period := c.cfg.RelistPeriod
	tick := c.cfg.Clock.NewTicker(period)
	defer func() { tick.Stop() }()
	retry := c.cfg.Clock.NewTimer(time.Hour)
	defer retry.Stop()
	c.Relist(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C():
			c.Relist(ctx)
		case <-c.kick:
			c.mu.Lock()
			want, poll := c.wantRelist, c.noEvents
			c.mu.Unlock()
			if want {
				c.Relist(ctx)
			}
			if poll && period != c.cfg.PollPeriod {
				period = c.cfg.PollPeriod
				tick.Stop()
				tick = c.cfg.Clock.NewTicker(period)
				logger(ctx).Info("No runtime events: relisting the runtime's state periodically", "period", period)
			}
			c.HandleExits(ctx)
		case <-retry.C():
			c.HandleExits(ctx)
		}
		if d, ok := c.nextRetry(); ok {
			retry.Reset(d)
		}
	}
}

// HandleExits asks the runtime about every announced exit that is due, reports pods whose
// state changed, and schedules another look at exits the runtime does not show yet.
func (c *Cache) HandleExits(ctx context.Context) {
	now := c.cfg.Clock.Now()
	c.mu.Lock()
	var due []string
	for id, l := range c.looks {
		if !l.at.After(now) {
			due = append(due, id)
		}
	}
	c.mu.Unlock()
	changed := map[types.UID]bool{}
	for _, id := range due {
		c.mu.Lock()
		if !c.markLocked(id, true) { // gone, or its exit already seen
			delete(c.looks, id)
			c.mu.Unlock()
			continue
		}
		c.mu.Unlock()
		uid, news, err := c.refresh(ctx, id)
		if news {
			changed[uid] = true
		}
		c.mu.Lock()
		o, l := c.objs[id], c.looks[id]
		if o == nil || (err == nil && o.final()) || l.n >= len(exitRetries) {
			delete(c.looks, id)
		} else {
			c.looks[id] = look{n: l.n + 1, at: now.Add(exitRetries[l.n])}
		}
		c.mu.Unlock()
	}
	c.notify(changed)
}

// nextRetry is how long until the earliest scheduled exit look.
func (c *Cache) nextRetry() (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first time.Time
	for _, l := range c.looks {
		if first.IsZero() || l.at.Before(first) {
			first = l.at
		}
	}
	if first.IsZero() {
		return 0, false
	}
	return max(first.Sub(c.cfg.Clock.Now()), 0), true
}

func (c *Cache) notify(pods map[types.UID]bool) {
	for uid := range pods {
		if uid != "" {
			c.cfg.Changed(uid)
		}
	}
}

// listed is one object as a full list shows it.
type listed struct {
	uid       types.UID
	ref       PodRef
	sandbox   bool
	sandboxID string
	ready     bool               // sandboxes
	state     cri.ContainerState // containers
	item      *runtimeapi.PodSandbox
}

// Relist lists every sandbox and container of the node, brings the cache in line with
// the lists (new objects, changed states, removals), asks about what changed, and reports
// the pods whose state changed. A failed list changes nothing.
func (c *Cache) Relist(ctx context.Context) {
	c.mu.Lock()
	c.wantRelist = false
	start := c.seq
	c.mu.Unlock()
	all, err := c.list(ctx)
	if err != nil {
		logger(ctx).V(4).Info("Relist failed", "err", err)
		return
	}
	changed := c.reconcile(all, start)
	present := map[types.UID]PodRef{}
	var stale []string
	c.mu.Lock()
	for _, l := range all {
		if _, ok := present[l.uid]; !ok || l.sandbox {
			present[l.uid] = l.ref
		}
	}
	for id, o := range c.objs {
		if o.stale() {
			stale = append(stale, id)
		}
	}
	c.mu.Unlock()
	for _, id := range stale {
		if uid, news, err := c.refresh(ctx, id); news {
			changed[uid] = true
		} else if err != nil {
			logger(ctx).V(4).Info("Runtime status failed", "id", id, "err", err)
		}
	}
	c.mu.Lock()
	c.lastRelist = c.cfg.Clock.Now()
	c.mu.Unlock()
	c.once.Do(func() { close(c.ready) })
	c.notify(changed)
	if c.cfg.Relisted != nil {
		c.cfg.Relisted(present)
	}
}

func (c *Cache) list(ctx context.Context) (map[string]listed, error) {
	sel := map[string]string{cri.LabelNode: c.cfg.Node}
	sbs, err := c.cfg.Runtime.ListSandboxes(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	cts, err := c.cfg.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	all := map[string]listed{}
	for _, s := range sbs {
		all[s.Id] = listed{uid: types.UID(s.Labels[cri.LabelPodUID]), sandbox: true, item: s,
			ref:   PodRef{Namespace: s.Labels[cri.LabelPodNamespace], Name: s.Labels[cri.LabelPodName]},
			ready: s.State == runtimeapi.PodSandboxState_SANDBOX_READY}
	}
	for _, ct := range cts {
		all[ct.Id] = listed{uid: types.UID(ct.Labels[cri.LabelPodUID]), sandboxID: ct.PodSandboxId,
			ref:   PodRef{Namespace: ct.Labels[cri.LabelPodNamespace], Name: ct.Labels[cri.LabelPodName]},
			state: cri.StateOf(ct.State)}
	}
	return all, nil
}

// reconcile applies a full list to the cache: unknown objects are added (stopped
// sandboxes straight from the list, the rest stale), known ones whose listed state
// differs are marked stale, and objects the list lacks are dropped unless they were
// created after the list began. It returns the pods that lost objects.
func (c *Cache) reconcile(all map[string]listed, start uint64) map[types.UID]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	changed := map[types.UID]bool{}
	for id, l := range all {
		o := c.objs[id]
		if o == nil {
			o = c.add(id, l.uid, l.sandbox, l.sandboxID)
			o.news = true
			if l.sandbox && !l.ready {
				sb := cri.NewSandbox(&runtimeapi.PodSandboxStatus{Id: id, Metadata: l.item.Metadata,
					State: l.item.State, CreatedAt: l.item.CreatedAt})
				o.sb, o.seen, o.news = &sb, o.mark, false
				changed[l.uid] = true
			}
			continue
		}
		if o.sandbox && o.sb != nil && o.sb.Ready != l.ready || !o.sandbox && o.ct != nil && o.ct.State != l.state {
			c.markLocked(id, true)
		}
	}
	for id, o := range c.objs {
		if _, ok := all[id]; !ok && o.born <= start {
			changed[o.uid] = true
			c.drop(id)
		}
	}
	return changed
}
