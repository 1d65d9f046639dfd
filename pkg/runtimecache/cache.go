// Package runtimecache keeps the runtime's state of this node's pods (upstream calls this
// the PLEG and its cache). Runtime events and the kubelet's own mutations mark single
// sandboxes or containers stale, and only those are asked about again, with targeted
// PodSandboxStatus / ContainerStatus calls; a periodic full relist is the safety net for
// anything an event stream dropped, and its age is the cache's health. Pod workers read
// the cache instead of listing the runtime.
package runtimecache

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// Runtime is what the cache asks of the CRI client.
type Runtime interface {
	ListSandboxes(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error)
	ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error)
	SandboxStatus(ctx context.Context, id string) (*runtimeapi.PodSandboxStatus, error)
	ContainerStatus(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error)
}

// PodRef names a pod found in the runtime (from its labels).
type PodRef struct{ Namespace, Name string }

// Config is what a Cache needs; Runtime and Node are required.
type Config struct {
	Runtime Runtime
	Node    string
	// RelistPeriod is how often everything is listed again (default 5s).
	RelistPeriod time.Duration
	// PollPeriod replaces RelistPeriod once the runtime turns out to serve no event
	// stream (cri.EventUnavailable): relists are then the only way to see exits (default
	// 1s, upstream's generic PLEG period).
	PollPeriod time.Duration
	// Changed is called with a pod whose state the runtime changed (an exit, a removal,
	// anything a relist found); the kubelet's own mutations are not reported.
	Changed func(types.UID)
	// Relisted is called after every successful full relist with the pods present.
	Relisted func(map[types.UID]PodRef)
	Clock    clock.WithTicker
}

// healthThreshold is upstream's: a PLEG whose relist has not completed for this long makes
// the node NotReady.
const healthThreshold = 3 * time.Minute

// object is one sandbox or container as last seen, with its staleness.
type object struct {
	uid       types.UID
	sandbox   bool
	sandboxID string // a container's sandbox
	sb        *cri.Sandbox
	ct        *cri.Container
	// mark is bumped whenever the object may have changed; seen is the mark its state
	// was fetched at. mark > seen: stale.
	mark, seen uint64
	// news: the staleness came from the runtime (event, relist), not from our own call,
	// so a change found is reported through Changed.
	news bool
	// born is the sequence number at creation: a relist that began earlier cannot see it.
	born uint64
	// stopping counts our stop calls in flight: the exit they cause is read once the call
	// returns, so its event needs no looks of its own.
	stopping int
}

func (o *object) stale() bool { return o.mark > o.seen }

// final: an exited container and a stopped sandbox never change again in CRI.
func (o *object) final() bool {
	if o.sandbox {
		return o.sb != nil && !o.sb.Ready
	}
	return o.ct != nil && o.ct.State == cri.StateExited
}

// Cache is the node's runtime state.
type Cache struct {
	cfg   Config
	mu    sync.Mutex
	objs  map[string]*object
	pods  map[types.UID]map[string]bool
	seq   uint64
	ready chan struct{} // closed after the first full relist
	once  sync.Once
	// lastRelist is when a full relist last succeeded (health).
	lastRelist time.Time
	// kick asks the loop for a full relist soon (an event named an unknown object).
	kick chan struct{}
	// wantRelist: an event asked for a full relist (see kickLocked).
	wantRelist bool
	// looks: exits the runtime announced whose CRI state may not show them yet.
	looks map[string]look
	// noEvents: the runtime serves no event stream; Run relists every PollPeriod.
	noEvents bool
}

// look is a pending look at an announced exit: how many were made, and when the next is due.
type look struct {
	n  int
	at time.Time
}

// New checks cfg.
func New(cfg Config) (*Cache, error) {
	if cfg.Runtime == nil || cfg.Node == "" {
		return nil, fmt.Errorf("runtimecache: Runtime and Node are required")
	}
	if cfg.RelistPeriod <= 0 {
		cfg.RelistPeriod = 5 * time.Second
	}
	if cfg.PollPeriod <= 0 {
		cfg.PollPeriod = time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Changed == nil {
		cfg.Changed = func(types.UID) {}
	}
	return &Cache{cfg: cfg, objs: map[string]*object{}, pods: map[types.UID]map[string]bool{},
		ready: make(chan struct{}), kick: make(chan struct{}, 1),
		looks: map[string]look{}}, nil
}

// Healthy reports an error in upstream's words when no full relist has succeeded for
// longer than upstream's threshold.
func (c *Cache) Healthy() error {
	c.mu.Lock()
	last := c.lastRelist
	c.mu.Unlock()
	if last.IsZero() {
		return nil // still starting: the runtime's own readiness says why
	}
	if d := c.cfg.Clock.Since(last); d > healthThreshold {
		return fmt.Errorf("PLEG is not healthy: pleg was last seen active %v ago; threshold is %v", d, healthThreshold)
	}
	return nil
}

// Get returns a pod's runtime state, asking the runtime first about the pod's objects
// that may have changed (so a caller reads its own writes). It waits for the first full
// relist.
func (c *Cache) Get(ctx context.Context, uid types.UID) (*cri.PodState, error) {
	select {
	case <-c.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.mu.Lock()
	var stale []string
	for id := range c.pods[uid] {
		if c.objs[id].stale() {
			stale = append(stale, id)
		}
	}
	c.mu.Unlock()
	news := false
	for _, id := range stale {
		_, n, err := c.refresh(ctx, id)
		if err != nil {
			return nil, err
		}
		news = news || n
	}
	if news {
		// The runtime's change reached this reader first; the pod's worker must still hear.
		c.cfg.Changed(uid)
	}
	return c.snapshot(uid), nil
}

// RunningLogs returns the log file of every container the cache holds as running, by
// container ID (log rotation reads this instead of asking the runtime about each one).
func (c *Cache) RunningLogs(context.Context) (map[string]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	for id, o := range c.objs {
		if o.ct != nil && o.ct.State == cri.StateRunning && o.ct.LogPath != "" {
			out[id] = o.ct.LogPath
		}
	}
	return out, nil
}

// Has reports whether the runtime has any sandbox or container of the pod, as last seen.
func (c *Cache) Has(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pods[uid]) > 0
}

// Counts are the pods with a ready sandbox and the containers by state, as last seen
// (upstream's kubelet_running_pods and kubelet_running_containers come from its PLEG
// cache too).
func (c *Cache) Counts() (runningPods int, containers map[cri.ContainerState]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	containers = map[cri.ContainerState]int{cri.StateCreated: 0, cri.StateRunning: 0, cri.StateExited: 0, cri.StateUnknown: 0}
	ready := map[types.UID]bool{}
	for _, o := range c.objs {
		switch {
		case o.sb != nil && o.sb.Ready:
			ready[o.uid] = true
		case o.ct != nil:
			containers[o.ct.State]++
		}
	}
	return len(ready), containers
}

// snapshot builds the model of one pod from the objects whose state is known.
func (c *Cache) snapshot(uid types.UID) *cri.PodState {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &cri.PodState{UID: uid}
	for id := range c.pods[uid] {
		o := c.objs[id]
		switch {
		case o.sb != nil:
			st.Sandboxes = append(st.Sandboxes, *o.sb)
		case o.ct != nil:
			ct := *o.ct
			st.Containers = append(st.Containers, ct)
		}
	}
	st.Sort()
	return st
}

// Observe takes a mutation the kubelet made through the CRI client (cri.Client.OnChange).
func (c *Cache) Observe(ch cri.Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ch.Op {
	case cri.SandboxCreated:
		c.add(ch.ID, ch.PodUID, true, "")
	case cri.SandboxRunFailed:
		c.kickLocked() // a sandbox the runtime kept is found by a list only

	case cri.ContainerCreated:
		c.add(ch.ID, ch.PodUID, false, ch.SandboxID)
	case cri.ContainerStarted:
		c.markLocked(ch.ID, false)
	case cri.ContainerStopping, cri.ContainerStopped:
		c.stopping(ch.ID, ch.Op == cri.ContainerStopping)
	case cri.SandboxStopping, cri.SandboxStopped:
		// Stopping a sandbox stops its containers too.
		starting := ch.Op == cri.SandboxStopping
		for _, id := range c.containersOf(ch.ID) {
			c.stopping(id, starting)
		}
		c.stopping(ch.ID, starting)
	case cri.ContainerRemoved:
		c.drop(ch.ID)
	case cri.SandboxRemoved:
		for _, id := range c.containersOf(ch.ID) {
			c.drop(id)
		}
		c.drop(ch.ID)
	}
}

// stopping notes a stop call of ours beginning, or ending (the object is then stale).
func (c *Cache) stopping(id string, begins bool) {
	o := c.objs[id]
	if o == nil {
		return
	}
	if begins {
		o.stopping++
		return
	}
	o.stopping = max(o.stopping-1, 0)
	c.markLocked(id, false)
}

func (c *Cache) containersOf(sandboxID string) []string {
	var out []string
	o := c.objs[sandboxID]
	if o == nil {
		return nil
	}
	for id := range c.pods[o.uid] {
		if c.objs[id].sandboxID == sandboxID {
			out = append(out, id)
		}
	}
	return out
}

// add records a new object, stale until its status is fetched.
func (c *Cache) add(id string, uid types.UID, sandbox bool, sandboxID string) *object {
	if o := c.objs[id]; o != nil {
		return o
	}
	c.seq++
	o := &object{uid: uid, sandbox: sandbox, sandboxID: sandboxID, mark: c.seq, born: c.seq}
	c.objs[id] = o
	if c.pods[uid] == nil {
		c.pods[uid] = map[string]bool{}
	}
	c.pods[uid][id] = true
	return o
}

func (c *Cache) drop(id string) {
	o := c.objs[id]
	if o == nil {
		return
	}
	delete(c.objs, id)
	delete(c.looks, id)
	delete(c.pods[o.uid], id)
	if len(c.pods[o.uid]) == 0 {
		delete(c.pods, o.uid)
	}
}

// markLocked makes an object stale unless its state is final; it reports whether it did.
func (c *Cache) markLocked(id string, news bool) bool {
	o := c.objs[id]
	if o == nil || o.final() {
		return false
	}
	c.seq++
	o.mark = c.seq
	o.news = o.news || news
	return true
}

// refresh asks the runtime about one object and stores the answer unless the object went
// meanwhile. It returns the object's pod and whether the object's state changed in a way
// the pod should hear of (see object.news).
func (c *Cache) refresh(ctx context.Context, id string) (types.UID, bool, error) {
	c.mu.Lock()
	o := c.objs[id]
	if o == nil {
		c.mu.Unlock()
		return "", false, nil
	}
	uid, mark, sandbox, sandboxID := o.uid, o.mark, o.sandbox, o.sandboxID
	c.mu.Unlock()

	var sb *cri.Sandbox
	var ct *cri.Container
	var err error
	if sandbox {
		var ss *runtimeapi.PodSandboxStatus
		if ss, err = c.cfg.Runtime.SandboxStatus(ctx, id); err == nil {
			s := cri.NewSandbox(ss)
			sb = &s
		}
	} else {
		var cs *runtimeapi.ContainerStatus
		if cs, err = c.cfg.Runtime.ContainerStatus(ctx, id); err == nil {
			k := cri.NewContainer(sandboxID, cs)
			ct = &k
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	o = c.objs[id]
	if o == nil {
		return uid, false, nil
	}
	if errdefs.IsNotFound(err) {
		news := o.news
		c.drop(id)
		return uid, news, nil
	}
	if err != nil {
		return uid, false, err
	}
	changed := !sameState(o, sb, ct)
	o.sb, o.ct = sb, ct
	if mark > o.seen {
		o.seen = mark
	}
	news := o.news && changed
	if !o.stale() {
		o.news = false
	}
	if news && ct != nil && ct.State == cri.StateExited && !ct.FinishedAt.IsZero() {
		exitSeen.Observe(c.cfg.Clock.Since(ct.FinishedAt).Seconds())
	}
	return uid, news, nil
}

func sameState(o *object, sb *cri.Sandbox, ct *cri.Container) bool {
	if sb != nil {
		return o.sb != nil && o.sb.Ready == sb.Ready
	}
	return o.ct != nil && ct != nil && o.ct.State == ct.State && o.ct.StartedAt.Equal(ct.StartedAt)
}

// logger is the loop's logger.
func logger(ctx context.Context) klog.Logger { return klog.FromContext(ctx).WithName("runtimecache") }
