package runtimecache

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
	testclock "k8s.io/utils/clock/testing"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/cri/critesting"
)

// fixture: a cache over cri-api's fake runtime, wired as the kubelet wires it (the CRI
// client reports its mutations to the cache), with the pods it reported as changed.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	rt    *critest.FakeRuntimeService
	cri   *cri.Client
	cache *Cache
	clock *testclock.FakeClock

	mu      sync.Mutex
	changed []types.UID
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, ctx: context.Background(), rt: critest.NewFakeRuntimeService(),
		clock: testclock.NewFakeClock(time.Unix(1_700_000_000, 0))}
	f.cri = critesting.NewFake(f.rt, critest.NewFakeImageService())
	c, err := New(Config{Runtime: f.cri, Node: "n", Clock: f.clock, Changed: func(uid types.UID) {
		f.mu.Lock()
		f.changed = append(f.changed, uid)
		f.mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	f.cache = c
	f.cri.OnChange(c.Observe)
	c.Relist(f.ctx)
	return f
}

// takeChanged returns and forgets the pods reported so far.
func (f *fixture) takeChanged() []types.UID {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.changed
	f.changed = nil
	return out
}

// calls returns and forgets the CRI calls made so far.
func (f *fixture) calls() []string {
	f.rt.Lock()
	defer f.rt.Unlock()
	out := f.rt.Called
	f.rt.Called = nil
	return out
}

// startPod runs a sandbox and one container through the CRI client, as a pod worker does.
func (f *fixture) startPod(uid string) (sandboxID, containerID string) {
	f.t.Helper()
	sbCfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "p-" + uid, Namespace: "ns", Uid: uid},
		Labels:   map[string]string{cri.LabelNode: "n", cri.LabelPodUID: uid, cri.LabelPodName: "p-" + uid, cri.LabelPodNamespace: "ns"},
	}
	sb, err := f.cri.RunSandbox(f.ctx, sbCfg, "")
	if err != nil {
		f.t.Fatal(err)
	}
	id, err := f.cri.CreateContainer(f.ctx, sb, &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: "busybox"},
		Labels: map[string]string{cri.LabelNode: "n", cri.LabelPodUID: uid}}, sbCfg)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.cri.StartContainer(f.ctx, id); err != nil {
		f.t.Fatal(err)
	}
	return sb, id
}

func (f *fixture) get(uid string) *cri.PodState {
	f.t.Helper()
	st, err := f.cache.Get(f.ctx, types.UID(uid))
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// exitBehindOurBack makes a container exit in the runtime without telling the cache.
func (f *fixture) exitBehindOurBack(id string, code int32) {
	f.rt.Lock()
	defer f.rt.Unlock()
	c := f.rt.Containers[id]
	c.State, c.ExitCode, c.FinishedAt = runtimeapi.ContainerState_CONTAINER_EXITED, code, f.clock.Now().UnixNano()
}

func containerState(st *cri.PodState, id string) cri.ContainerState {
	for _, c := range st.Containers {
		if c.ID == id {
			return c.State
		}
	}
	return "absent"
}

// The kubelet reads its own writes with targeted status calls only: starting a
// one-container pod costs the three mutations plus one status call per new object, and
// nobody is woken for changes the kubelet made itself.
func TestCacheReadsOwnWritesWithTargetedCalls(t *testing.T) {
	f := newFixture(t)
	f.calls()
	sb, id := f.startPod("u1")
	f.rt.Lock()
	f.rt.Containers[id].LogPath = "/logs/c/0.log"
	f.rt.Unlock()
	st := f.get("u1")
	if sb := st.ReadySandbox(); sb == nil {
		t.Fatalf("no ready sandbox in %+v", st)
	}
	if st.Sandboxes[0].ID != sb || containerState(st, id) != cri.StateRunning {
		t.Fatalf("state %+v", st)
	}
	want := []string{"RunPodSandbox", "CreateContainer", "StartContainer", "PodSandboxStatus", "ContainerStatus"}
	got := f.calls()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("CRI calls %v, want %v", got, want)
	}
	// A second read asks nothing; a stop is read back at once.
	f.get("u1")
	if c := f.calls(); len(c) != 0 {
		t.Fatalf("clean read made calls %v", c)
	}
	if logs, _ := f.cache.RunningLogs(f.ctx); len(logs) != 1 || logs[id] != "/logs/c/0.log" {
		t.Fatalf("running logs %v", logs)
	}
	if err := f.cri.StopContainer(f.ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if s := containerState(f.get("u1"), id); s != cri.StateExited {
		t.Fatalf("after our stop: %s", s)
	}
	if logs, _ := f.cache.RunningLogs(f.ctx); len(logs) != 0 {
		t.Fatalf("running logs after the stop %v", logs)
	}
	if ch := f.takeChanged(); len(ch) != 0 {
		t.Fatalf("own changes reported: %v", ch)
	}
	// Removing the sandbox drops its containers without asking the runtime.
	f.calls()
	if err := f.cri.StopSandbox(f.ctx, sb); err != nil {
		t.Fatal(err)
	}
	if err := f.cri.RemoveSandbox(f.ctx, sb); err != nil {
		t.Fatal(err)
	}
	if st := f.get("u1"); len(st.Sandboxes)+len(st.Containers) != 0 {
		t.Fatalf("after removal: %+v", st)
	}
	if c := f.calls(); !slices.Equal(c, []string{"StopPodSandbox", "RemovePodSandbox"}) {
		t.Fatalf("calls %v", c)
	}
}

// An exit event updates that container alone and wakes its pod; a second event for the
// same exit is free.
func TestCacheExitEvent(t *testing.T) {
	f := newFixture(t)
	_, id := f.startPod("u1")
	f.startPod("u2")
	f.get("u1")
	f.get("u2")
	f.calls()
	f.exitBehindOurBack(id, 3)
	f.cache.Event(cri.Event{Kind: cri.EventExit, ID: id})
	f.cache.HandleExits(f.ctx)
	if c := f.calls(); !slices.Equal(c, []string{"ContainerStatus"}) {
		t.Fatalf("calls %v, want one ContainerStatus", c)
	}
	if ch := f.takeChanged(); !slices.Equal(ch, []types.UID{"u1"}) {
		t.Fatalf("changed %v, want u1", ch)
	}
	st := f.get("u1")
	if containerState(st, id) != cri.StateExited || st.Containers[0].ExitCode != 3 {
		t.Fatalf("state %+v", st.Containers)
	}
	f.cache.Event(cri.Event{Kind: cri.EventExit, ID: id})
	f.cache.HandleExits(f.ctx)
	if c := f.calls(); len(c) != 0 {
		t.Fatalf("repeated exit made calls %v", c)
	}
}

// containerd announces an exit before its CRI state shows it: the cache looks again
// after a short delay and reports the pod only when the exit is visible.
func TestCacheExitAnnouncedBeforeVisible(t *testing.T) {
	f := newFixture(t)
	_, id := f.startPod("u1")
	f.get("u1")
	f.cache.Event(cri.Event{Kind: cri.EventExit, ID: id})
	f.cache.HandleExits(f.ctx)
	if ch := f.takeChanged(); len(ch) != 0 {
		t.Fatalf("changed %v before the runtime showed the exit", ch)
	}
	d, ok := f.cache.nextRetry()
	if !ok || d != exitRetries[0] {
		t.Fatalf("next look in %v (%v), want %v", d, ok, exitRetries[0])
	}
	f.exitBehindOurBack(id, 0)
	f.clock.Step(d)
	f.cache.HandleExits(f.ctx)
	if ch := f.takeChanged(); !slices.Equal(ch, []types.UID{"u1"}) {
		t.Fatalf("changed %v, want u1", ch)
	}
	if _, ok := f.cache.nextRetry(); ok {
		t.Fatal("a look still scheduled after the exit was seen")
	}
}

// containerd 1.6 records an exit in its CRI state only after deleting the task: the
// task's delete event makes the next look due at once, however far the delays between
// looks have grown; alone (its exit event lost) it starts the looks; once the exit is
// known it costs no call.
func TestCacheExitRecordedLooksAtOnce(t *testing.T) {
	f := newFixture(t)
	_, id := f.startPod("u1")
	f.get("u1")
	f.cache.Event(cri.Event{Kind: cri.EventExit, ID: id})
	for _, d := range exitRetries[:3] {
		f.cache.HandleExits(f.ctx)
		f.clock.Step(d)
	}
	f.cache.HandleExits(f.ctx) // the fourth look: the next is exitRetries[3] away
	if d, _ := f.cache.nextRetry(); d != exitRetries[3] {
		t.Fatalf("next look in %v, want %v", d, exitRetries[3])
	}
	f.cache.Event(cri.Event{Kind: cri.EventExit, ID: id}) // a repeated exit changes nothing
	if d, _ := f.cache.nextRetry(); d != exitRetries[3] {
		t.Fatalf("after a repeated exit: next look in %v, want %v", d, exitRetries[3])
	}
	f.calls()
	f.exitBehindOurBack(id, 2)
	f.cache.Event(cri.Event{Kind: cri.EventExitRecorded, ID: id})
	if d, ok := f.cache.nextRetry(); !ok || d > 0 {
		t.Fatalf("after the record: next look in %v (%v), want now", d, ok)
	}
	f.cache.HandleExits(f.ctx)
	if c := f.calls(); !slices.Equal(c, []string{"ContainerStatus"}) {
		t.Fatalf("calls %v, want one ContainerStatus", c)
	}
	if ch := f.takeChanged(); !slices.Equal(ch, []types.UID{"u1"}) {
		t.Fatalf("changed %v, want u1", ch)
	}
	f.cache.Event(cri.Event{Kind: cri.EventExitRecorded, ID: id})
	f.cache.HandleExits(f.ctx)
	if c := f.calls(); len(c) != 0 {
		t.Fatalf("a record of a known exit made calls %v", c)
	}

	// The exit event lost: the record alone finds the exit.
	_, id2 := f.startPod("u2")
	f.get("u2")
	f.calls()
	f.exitBehindOurBack(id2, 1)
	f.cache.Event(cri.Event{Kind: cri.EventExitRecorded, ID: id2})
	f.cache.HandleExits(f.ctx)
	if ch := f.takeChanged(); !slices.Equal(ch, []types.UID{"u2"}) {
		t.Fatalf("changed %v, want u2", ch)
	}
	if st := f.get("u2"); containerState(st, id2) != cri.StateExited {
		t.Fatalf("u2 state %+v", st.Containers)
	}
}

// Lost events, events for objects the cache has not seen yet, NotFound for an object an
// event named, and a runtime that fails mid-way: one full relist brings the cache to the
// runtime's truth and reports every pod that moved.
func TestCacheConvergesAfterLostAndReorderedEvents(t *testing.T) {
	f := newFixture(t)
	_, lost := f.startPod("lost")
	_, gone := f.startPod("gone")
	f.get("lost")
	f.get("gone")
	f.takeChanged()

	// Lost: an exit with no event.
	f.exitBehindOurBack(lost, 1)
	// NotFound: the event names a container the runtime no longer has.
	f.rt.Lock()
	delete(f.rt.Containers, gone)
	f.rt.Unlock()
	f.cache.Event(cri.Event{Kind: cri.EventExit, ID: gone})
	f.cache.HandleExits(f.ctx)
	if ch := f.takeChanged(); !slices.Equal(ch, []types.UID{"gone"}) {
		t.Fatalf("changed %v, want gone", ch)
	}
	if st := f.get("gone"); containerState(st, gone) != "absent" {
		t.Fatalf("removed container still cached: %+v", st.Containers)
	}
	// Reordered: an exit for a container the cache never saw (made by another client of
	// the runtime, e.g. before a restart of the kubelet) asks for a relist.
	other := critesting.NewFake(f.rt, critest.NewFakeImageService()) // not observed by the cache
	sbCfg := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "early"},
		Labels: map[string]string{cri.LabelNode: "n", cri.LabelPodUID: "early"}}
	sb, err := other.RunSandbox(f.ctx, sbCfg, "")
	if err != nil {
		t.Fatal(err)
	}
	early, err := other.CreateContainer(f.ctx, sb, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "c"},
		Image: &runtimeapi.ImageSpec{Image: "busybox"}, Labels: map[string]string{cri.LabelNode: "n", cri.LabelPodUID: "early"}}, sbCfg)
	if err != nil {
		t.Fatal(err)
	}
	f.cache.Event(cri.Event{Kind: cri.EventExit, ID: early})
	if !f.cache.wantRelist {
		t.Fatal("an exit of an unknown object did not ask for a relist")
	}
	// The runtime fails the first list (restarting): nothing changes, nothing is lost.
	f.rt.InjectError("ListContainers", status.Error(codes.Unavailable, "restarting"))
	f.cache.Relist(f.ctx)
	if ch := f.takeChanged(); len(ch) != 0 {
		t.Fatalf("a failed relist reported %v", ch)
	}
	f.cache.Relist(f.ctx)
	ch := f.takeChanged()
	slices.Sort(ch)
	if !slices.Equal(ch, []types.UID{"early", "lost"}) {
		t.Fatalf("changed %v, want early and lost", ch)
	}
	if s := containerState(f.get("lost"), lost); s != cri.StateExited {
		t.Fatalf("lost exit: %s", s)
	}
	if st := f.get("early"); len(st.Sandboxes) != 1 || containerState(st, early) != cri.StateCreated {
		t.Fatalf("early pod: %+v", st)
	}
	// A relist over an unchanged runtime asks for the lists only and reports nothing.
	f.calls()
	f.cache.Relist(f.ctx)
	if c := f.calls(); !slices.Equal(c, []string{"ListPodSandbox", "ListContainers"}) {
		t.Fatalf("quiet relist made calls %v", c)
	}
	if ch := f.takeChanged(); len(ch) != 0 {
		t.Fatalf("quiet relist reported %v", ch)
	}
}

// A runtime restart replaces objects wholesale: the relist drops the vanished ones and
// reports their pods; objects created while a relist's lists were in flight are kept.
func TestCacheRuntimeRestart(t *testing.T) {
	f := newFixture(t)
	_, id := f.startPod("u1")
	f.get("u1")
	f.takeChanged()
	f.rt.Lock()
	f.rt.Containers = map[string]*critest.FakeContainer{}
	f.rt.Sandboxes = map[string]*critest.FakePodSandbox{}
	f.rt.Unlock()
	f.cache.Relist(f.ctx)
	if ch := f.takeChanged(); !slices.Equal(ch, []types.UID{"u1"}) {
		t.Fatalf("changed %v, want u1", ch)
	}
	if st := f.get("u1"); containerState(st, id) != "absent" || len(st.Sandboxes) != 0 {
		t.Fatalf("state after restart %+v", st)
	}
	// An object born after the relist began is not dropped for missing from its lists.
	f.cache.mu.Lock()
	start := f.cache.seq
	f.cache.add("new", "u2", false, "sb")
	f.cache.mu.Unlock()
	f.cache.reconcile(map[string]listed{}, start)
	f.cache.mu.Lock()
	_, kept := f.cache.objs["new"]
	f.cache.mu.Unlock()
	if !kept {
		t.Fatal("object created during the relist was dropped")
	}
}

// Get waits for the first full relist; the health check uses upstream's threshold and
// words.
func TestCacheReadinessAndHealth(t *testing.T) {
	rt := critest.NewFakeRuntimeService()
	clk := testclock.NewFakeClock(time.Unix(1_700_000_000, 0))
	c, err := New(Config{Runtime: critesting.NewFake(rt, critest.NewFakeImageService()), Node: "n", Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Get(ctx, "u"); err == nil {
		t.Fatal("Get answered before the first relist")
	}
	if err := c.Healthy(); err != nil {
		t.Fatalf("unhealthy before the first relist: %v", err)
	}
	c.Relist(context.Background())
	clk.Step(3*time.Minute + time.Second)
	err = c.Healthy()
	if err == nil || !strings.HasPrefix(err.Error(), "PLEG is not healthy: pleg was last seen active 3m1s ago; threshold is 3m0s") {
		t.Fatalf("health %v", err)
	}
	c.Relist(context.Background())
	if err := c.Healthy(); err != nil {
		t.Fatalf("health after a relist: %v", err)
	}
	if _, err := New(Config{Node: "n"}); err == nil {
		t.Fatal("New without a runtime")
	}
}

// The exit our own stop causes is read once, when the stop returns: its event, arriving
// while the runtime still shows the sandbox ready, schedules no looks of its own.
func TestCacheOwnStopNeedsNoExitLooks(t *testing.T) {
	f := newFixture(t)
	sb, id := f.startPod("u1")
	f.get("u1")
	f.calls()
	f.cache.Observe(cri.Change{Op: cri.SandboxStopping, ID: sb}) // as cri.Client.StopSandbox does
	f.exitBehindOurBack(id, 137)
	f.cache.Event(cri.Event{Kind: cri.EventExit, ID: id})
	f.cache.Event(cri.Event{Kind: cri.EventExit, ID: sb})
	f.cache.HandleExits(f.ctx)
	if _, ok := f.cache.nextRetry(); ok {
		t.Fatal("looks scheduled for exits of our own stop")
	}
	if c := f.calls(); len(c) != 0 {
		t.Fatalf("calls during our stop: %v", c)
	}
	f.rt.Lock()
	f.rt.Sandboxes[sb].State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	f.rt.Unlock()
	f.cache.Observe(cri.Change{Op: cri.SandboxStopped, ID: sb})
	st := f.get("u1")
	if containerState(st, id) != cri.StateExited || st.ReadySandbox() != nil {
		t.Fatalf("after the stop: %+v", st)
	}
	got := f.calls()
	slices.Sort(got)
	if !slices.Equal(got, []string{"ContainerStatus", "PodSandboxStatus"}) {
		t.Fatalf("calls after the stop %v, want one status each", got)
	}
	if ch := f.takeChanged(); len(ch) != 0 {
		t.Fatalf("own stop reported: %v", ch)
	}
}

// A failed RunPodSandbox asks for a relist at once: containerd may keep the sandbox (its
// network set-up failed) and refuses the same attempt's name until the kubelet has seen it.
func TestCacheRelistsAfterFailedSandbox(t *testing.T) {
	f := newFixture(t)
	sbCfg := &runtimeapi.PodSandboxConfig{Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "kept"},
		Labels: map[string]string{cri.LabelNode: "n", cri.LabelPodUID: "kept"}}
	// The runtime keeps a sandbox behind the cache's back, then fails the call.
	other := critesting.NewFake(f.rt, critest.NewFakeImageService())
	if _, err := other.RunSandbox(f.ctx, sbCfg, ""); err != nil {
		t.Fatal(err)
	}
	f.rt.InjectError("RunPodSandbox", status.Error(codes.Unknown, "failed to setup network for sandbox"))
	if _, err := f.cri.RunSandbox(f.ctx, sbCfg, ""); err == nil {
		t.Fatal("injected error not returned")
	}
	if !f.cache.wantRelist {
		t.Fatal("a failed RunPodSandbox did not ask for a relist")
	}
	f.cache.Relist(f.ctx)
	if st := f.get("kept"); len(st.Sandboxes) != 1 {
		t.Fatalf("the kept sandbox is not in the cache: %+v", st)
	}
}

// Counts gives the metrics' running pods and containers by state from the cache alone.
func TestCacheCounts(t *testing.T) {
	f := newFixture(t)
	_, a := f.startPod("a")
	f.startPod("b")
	f.exitBehindOurBack(a, 0)
	f.cache.Relist(f.ctx)
	f.calls()
	pods, cts := f.cache.Counts()
	if pods != 2 || cts[cri.StateRunning] != 1 || cts[cri.StateExited] != 1 || cts[cri.StateCreated] != 0 {
		t.Errorf("counts: %d pods, containers %v; want 2 pods, 1 running and 1 exited", pods, cts)
	}
	if c := f.calls(); len(c) != 0 {
		t.Errorf("Counts asked the runtime: %v", c)
	}
}

// A runtime that serves no event stream (cri.EventUnavailable, as CRI-O without pod
// events): from then on the cache relists every PollPeriod, not every RelistPeriod.
func TestCachePollsWithoutEvents(t *testing.T) {
	f := newFixture(t)
	f.calls()
	ctx, cancel := context.WithCancel(f.ctx)
	var wg sync.WaitGroup
	wg.Go(func() { f.cache.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	lists := 0
	await := func(what string, done func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !done(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	relisted := func(n int) func() bool {
		return func() bool {
			lists += strings.Count(strings.Join(f.calls(), ","), "ListPodSandbox")
			return lists >= n
		}
	}
	await("Run's first relist", relisted(1))
	await("Run's ticker and timer", func() bool { return f.clock.Waiters() == 2 })
	f.cache.Event(cri.Event{Kind: cri.EventUnavailable})
	await("the relist the event asks for", relisted(2))
	await("a ticker at PollPeriod", func() bool { return f.clock.Waiters() == 3 })
	f.clock.Step(time.Second)
	await("a relist one PollPeriod later", relisted(3))
}
