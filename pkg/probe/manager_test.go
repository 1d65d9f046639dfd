package probe

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	testclock "k8s.io/utils/clock/testing"
)

// The worker tests drive probes by hand: every probe is an exec whose command names the
// probe kind; the fake exec hands each call to the test, which answers it. The workers
// wait on a fake clock, so a probe happens only when the test steps the clock.

type execCall struct {
	id    string
	reply chan execReply
}

type execReply struct {
	code int32
	err  error
}

type fakeExec struct {
	calls map[string]chan execCall // by command (probe kind)
}

func newFakeExec() *fakeExec {
	f := &fakeExec{calls: map[string]chan execCall{}}
	for _, k := range []Kind{Liveness, Readiness, Startup} {
		f.calls[string(k)] = make(chan execCall)
	}
	return f
}

func (f *fakeExec) exec(ctx context.Context, id string, cmd []string, _ time.Duration) ([]byte, int32, error) {
	call := execCall{id: id, reply: make(chan execReply, 1)}
	select {
	case f.calls[cmd[0]] <- call:
	case <-ctx.Done():
		return nil, -1, ctx.Err()
	}
	select {
	case r := <-call.reply:
		return []byte("probe said no"), r.code, r.err
	case <-ctx.Done():
		return nil, -1, ctx.Err()
	}
}

// next waits for the next probe of kind k.
func (f *fakeExec) next(t *testing.T, k Kind) execCall {
	t.Helper()
	select {
	case c := <-f.calls[string(k)]:
		return c
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s probe", k)
	}
	return execCall{}
}

// none asserts that no probe of kind k runs now.
func (f *fakeExec) none(t *testing.T, k Kind) {
	t.Helper()
	select {
	case c := <-f.calls[string(k)]:
		c.reply <- execReply{}
		t.Fatalf("unexpected %s probe of %s", k, c.id)
	case <-time.After(50 * time.Millisecond):
	}
}

func (c execCall) succeed() { c.reply <- execReply{code: 0} }
func (c execCall) fail()    { c.reply <- execReply{code: 1} }

// recorder collects events and result changes.
type recorder struct {
	mu         sync.Mutex
	events     []string
	containers []string // "container: event"
	changes    int
	changed    chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 100)} }

func (r *recorder) event(_ *v1.Pod, c *v1.Container, typ, reason, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := typ + " " + reason + " " + fmt.Sprintf(format, args...)
	r.events = append(r.events, e)
	r.containers = append(r.containers, c.Name+": "+e)
}

func (r *recorder) onChange(types.UID) {
	r.mu.Lock()
	r.changes++
	r.mu.Unlock()
	r.changed <- struct{}{}
}

func (r *recorder) changeCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changes
}

func (r *recorder) eventList() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// waitChange waits for onChange to be called.
func (r *recorder) waitChange(t *testing.T) {
	t.Helper()
	select {
	case <-r.changed:
	case <-time.After(5 * time.Second):
		t.Fatal("no result change")
	}
}

// startManager runs m until the test ends.
func startManager(t *testing.T, m *Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		m.mu.Lock()
		running := m.ctx != nil
		m.mu.Unlock()
		if running {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("manager did not start")
		}
	}
}

func newTestManager(t *testing.T) (*Manager, *fakeExec, *recorder, *testclock.FakeClock) {
	fc := testclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	f, rec := newFakeExec(), newRecorder()
	m := NewManager(f.exec, rec.event, rec.onChange, WithClock(fc))
	startManager(t, m)
	// Long past the manager's start: no start-up jitter.
	fc.Step(time.Hour)
	return m, f, rec, fc
}

func execProbe(k Kind, period, success, failure int32) *v1.Probe {
	// A generous timeout: the exec's own deadline runs on the real clock.
	return &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{string(k)}}},
		PeriodSeconds: period, SuccessThreshold: success, FailureThreshold: failure, TimeoutSeconds: 60}
}

func testPod(c v1.Container) *v1.Pod {
	return &v1.Pod{ObjectMeta: podMeta, Spec: v1.PodSpec{Containers: []v1.Container{c}}}
}

var podMeta = metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1"}

func TestWorkerReadinessThresholds(t *testing.T) {
	m, f, rec, fc := newTestManager(t)
	pod := testPod(v1.Container{Name: "c", ReadinessProbe: execProbe(Readiness, 10, 2, 3)})
	c := &pod.Spec.Containers[0]
	m.Sync(pod, map[string]Running{"c": {ID: "c1", StartedAt: fc.Now()}}, "10.0.0.1")
	ready := func() bool { return m.Ready(pod.UID, c, "c1") }

	// No initial delay: the first probe runs at once. Two successes are needed.
	f.next(t, Readiness).succeed()
	fc.Step(10 * time.Second)
	call := f.next(t, Readiness)
	if ready() || rec.changeCount() != 0 {
		t.Fatalf("ready after one success of two (changes %d)", rec.changeCount())
	}
	call.succeed()
	rec.waitChange(t)
	if !ready() {
		t.Fatal("not ready after two successes")
	}

	// Three failures in a row to become unready; a success in between starts over.
	for _, ok := range []bool{false, false, true, false, false} {
		fc.Step(10 * time.Second)
		call := f.next(t, Readiness)
		if !ready() {
			t.Fatal("unready before three failures in a row")
		}
		if ok {
			call.succeed()
		} else {
			call.fail()
		}
	}
	fc.Step(10 * time.Second)
	f.next(t, Readiness).fail()
	rec.waitChange(t)
	if ready() {
		t.Fatal("ready after three failures")
	}
	if got := rec.changeCount(); got != 2 {
		t.Errorf("changes %d, want 2", got)
	}
	// Readiness keeps probing after failing, and recovers with two successes.
	for range 2 {
		fc.Step(10 * time.Second)
		f.next(t, Readiness).succeed()
	}
	rec.waitChange(t)
	if !ready() {
		t.Fatal("not ready again after two successes")
	}
	want := "Warning Unhealthy Readiness probe failed: probe said no"
	if n := countOf(rec.eventList(), want); n != 5 {
		t.Errorf("%d events %q, want 5; events %q", n, want, rec.eventList())
	}
}

func TestWorkerLivenessThresholds(t *testing.T) {
	m, f, rec, fc := newTestManager(t)
	pod := testPod(v1.Container{Name: "c", LivenessProbe: execProbe(Liveness, 5, 1, 3)})
	c := &pod.Spec.Containers[0]
	m.Sync(pod, map[string]Running{"c": {ID: "c1", StartedAt: fc.Now()}}, "10.0.0.1")

	// fail, fail, success, fail, fail: never three in a row.
	for i, ok := range []bool{false, false, true, false, false} {
		if i > 0 {
			fc.Step(5 * time.Second)
		}
		call := f.next(t, Liveness)
		if _, _, failed := m.Failed(pod.UID, c, "c1"); failed {
			t.Fatalf("probe %d: failed before three failures in a row", i)
		}
		if ok {
			call.succeed()
		} else {
			call.fail()
		}
	}
	// The success set the result (threshold 1): one change so far.
	if got := rec.changeCount(); got != 1 {
		t.Errorf("changes %d, want 1", got)
	}
	fc.Step(5 * time.Second)
	f.next(t, Liveness).fail()
	rec.waitChange(t) // success (drained) ...
	rec.waitChange(t) // ... then failure
	kind, p, failed := m.Failed(pod.UID, c, "c1")
	if !failed || kind != Liveness || p != c.LivenessProbe {
		t.Fatalf("Failed = %v %v %v, want Liveness", kind, p, failed)
	}
	// A failed liveness worker stops: the container is killed and a new instance gets a
	// new worker.
	waitWorkersDone(t, m)
	fc.Step(time.Minute)
	f.none(t, Liveness)
}

func TestWorkerInitialDelay(t *testing.T) {
	m, f, _, fc := newTestManager(t)
	p := execProbe(Readiness, 10, 1, 1)
	p.InitialDelaySeconds = 5
	pod := testPod(v1.Container{Name: "c", ReadinessProbe: p})
	m.Sync(pod, map[string]Running{"c": {ID: "c1", StartedAt: fc.Now()}}, "10.0.0.1")

	waitForTimer(t, fc)
	f.none(t, Readiness)
	fc.Step(5*time.Second - time.Millisecond)
	f.none(t, Readiness)
	// Right at the initial delay, with no extra period.
	fc.Step(time.Millisecond)
	f.next(t, Readiness).succeed()
	// Then every period from that first probe.
	fc.Step(10*time.Second - time.Millisecond)
	f.none(t, Readiness)
	fc.Step(time.Millisecond)
	f.next(t, Readiness).succeed()
}

func TestWorkerInitialDelayCountsFromContainerStart(t *testing.T) {
	m, f, _, fc := newTestManager(t)
	p := execProbe(Liveness, 10, 1, 1)
	p.InitialDelaySeconds = 5
	pod := testPod(v1.Container{Name: "c", LivenessProbe: p})
	// Started 3s ago: 2s left.
	m.Sync(pod, map[string]Running{"c": {ID: "c1", StartedAt: fc.Now().Add(-3 * time.Second)}}, "10.0.0.1")
	waitForTimer(t, fc)
	fc.Step(2*time.Second - time.Millisecond)
	f.none(t, Liveness)
	fc.Step(time.Millisecond)
	f.next(t, Liveness).succeed()

	// Started long ago: at once.
	pod2 := testPod(v1.Container{Name: "d", LivenessProbe: p})
	pod2.UID = "uid-2"
	m.Sync(pod2, map[string]Running{"d": {ID: "d1", StartedAt: fc.Now().Add(-time.Minute)}}, "10.0.0.2")
	if call := f.next(t, Liveness); call.id != "d1" {
		t.Fatalf("probed %s, want d1", call.id)
	} else {
		call.succeed()
	}
}

func TestWorkerJitterAfterRestart(t *testing.T) {
	// A container already running when the manager started is probed within one period,
	// at a random point, so that a restarted kubelet does not probe everything at once.
	fc := testclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	f, rec := newFakeExec(), newRecorder()
	m := NewManager(f.exec, rec.event, rec.onChange, WithClock(fc))
	startManager(t, m)
	pod := testPod(v1.Container{Name: "c", LivenessProbe: execProbe(Liveness, 10, 1, 1)})
	m.Sync(pod, map[string]Running{"c": {ID: "c1", StartedAt: fc.Now().Add(-time.Hour)}}, "10.0.0.1")
	select {
	case call := <-f.calls[string(Liveness)]:
		call.succeed() // a jitter of 0 is possible
		return
	case <-time.After(50 * time.Millisecond):
	}
	waitForTimer(t, fc)
	fc.Step(10 * time.Second)
	f.next(t, Liveness).succeed()
}

func TestWorkerStartupGatesLivenessAndReadiness(t *testing.T) {
	m, f, rec, fc := newTestManager(t)
	pod := testPod(v1.Container{Name: "c",
		StartupProbe:   execProbe(Startup, 3, 1, 5),
		LivenessProbe:  execProbe(Liveness, 10, 1, 1),
		ReadinessProbe: execProbe(Readiness, 10, 1, 1)})
	c := &pod.Spec.Containers[0]
	m.Sync(pod, map[string]Running{"c": {ID: "c1", StartedAt: fc.Now()}}, "10.0.0.1")
	waitForWaiters(t, fc, 3) // the three workers' tickers, from now

	f.next(t, Startup).fail()
	fc.Step(3 * time.Second)
	f.next(t, Startup).fail()
	f.none(t, Liveness)
	f.none(t, Readiness)
	if m.Started(pod.UID, c, "c1") || m.Ready(pod.UID, c, "c1") {
		t.Fatal("started or ready before the startup probe passed")
	}
	if _, _, failed := m.Failed(pod.UID, c, "c1"); failed {
		t.Fatal("failed after two of five startup failures")
	}
	fc.Step(3 * time.Second)
	f.next(t, Startup).succeed()
	rec.waitChange(t)
	if !m.Started(pod.UID, c, "c1") {
		t.Fatal("not started after the startup probe passed")
	}
	if m.Ready(pod.UID, c, "c1") {
		t.Fatal("ready before the readiness probe passed")
	}
	// The liveness and readiness workers' next period (t=10s) probes; the startup worker
	// is done.
	fc.Step(4 * time.Second)
	f.next(t, Liveness).succeed()
	f.next(t, Readiness).succeed()
	f.none(t, Startup)
	rec.waitChange(t)
	rec.waitChange(t)
	if !m.Ready(pod.UID, c, "c1") {
		t.Fatal("not ready after the readiness probe passed")
	}
	fc.Step(time.Minute)
	f.next(t, Liveness).succeed()
	f.next(t, Readiness).succeed()
	f.none(t, Startup)
}

func TestWorkerStartupFailure(t *testing.T) {
	m, f, rec, fc := newTestManager(t)
	pod := testPod(v1.Container{Name: "c", StartupProbe: execProbe(Startup, 1, 1, 2), LivenessProbe: execProbe(Liveness, 1, 1, 1)})
	c := &pod.Spec.Containers[0]
	m.Sync(pod, map[string]Running{"c": {ID: "c1", StartedAt: fc.Now()}}, "10.0.0.1")
	f.next(t, Startup).fail()
	fc.Step(time.Second)
	f.next(t, Startup).fail()
	rec.waitChange(t)
	if kind, _, failed := m.Failed(pod.UID, c, "c1"); !failed || kind != Startup {
		t.Fatalf("Failed = %v %v, want Startup", kind, failed)
	}
	if m.Started(pod.UID, c, "c1") {
		t.Fatal("started after the startup probe failed")
	}
	fc.Step(time.Minute)
	f.none(t, Startup)
	f.none(t, Liveness)
}

func TestResultsNotifyOnlyOnChange(t *testing.T) {
	m, f, rec, fc := newTestManager(t)
	pod := testPod(v1.Container{Name: "c", ReadinessProbe: execProbe(Readiness, 1, 1, 1)})
	m.Sync(pod, map[string]Running{"c": {ID: "c1", StartedAt: fc.Now()}}, "10.0.0.1")
	// Each probe's result is recorded before the next probe runs, so the count is exact
	// when the next probe arrives.
	results := []bool{true, true, true, false, false, true, true}
	wantChanges := []int{1, 1, 1, 2, 2, 3, 3}
	for i, ok := range results {
		if i > 0 {
			fc.Step(time.Second)
		}
		call := f.next(t, Readiness)
		if i > 0 {
			if got := rec.changeCount(); got != wantChanges[i-1] {
				t.Fatalf("after probe %d: %d changes, want %d", i-1, got, wantChanges[i-1])
			}
		}
		if ok {
			call.succeed()
		} else {
			call.fail()
		}
	}
	fc.Step(time.Second)
	f.next(t, Readiness).succeed()
	if got := rec.changeCount(); got != 3 {
		t.Fatalf("%d changes, want 3", got)
	}
}

func TestWorkerErroredProbeIsNotCounted(t *testing.T) {
	m, f, rec, fc := newTestManager(t)
	pod := testPod(v1.Container{Name: "c", LivenessProbe: execProbe(Liveness, 1, 1, 1)})
	c := &pod.Spec.Containers[0]
	m.Sync(pod, map[string]Running{"c": {ID: "c1", StartedAt: fc.Now()}}, "10.0.0.1")
	// An exec the runtime cannot run is tried three times, then reported and not counted.
	for range maxProbeRetries {
		f.next(t, Liveness).reply <- execReply{code: -1, err: errors.New("container not running")}
	}
	fc.Step(time.Second)
	f.next(t, Liveness).fail()
	rec.waitChange(t)
	if _, _, failed := m.Failed(pod.UID, c, "c1"); !failed {
		t.Fatal("not failed")
	}
	want := []string{
		"Warning Unhealthy Liveness probe errored and resulted in unknown state: container not running",
		"Warning Unhealthy Liveness probe failed: probe said no",
	}
	if got := rec.eventList(); !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
	if got := rec.changeCount(); got != 1 {
		t.Errorf("changes %d, want 1", got)
	}
}

func TestWorkerStoppedWhenContainerGoes(t *testing.T) {
	m, f, rec, fc := newTestManager(t)
	pod := testPod(v1.Container{Name: "c", ReadinessProbe: execProbe(Readiness, 10, 1, 1), LivenessProbe: execProbe(Liveness, 10, 1, 1)})
	c := &pod.Spec.Containers[0]
	m.Sync(pod, map[string]Running{"c": {ID: "c1", StartedAt: fc.Now()}}, "10.0.0.1")
	f.next(t, Readiness).succeed()
	rec.waitChange(t)
	if !m.Ready(pod.UID, c, "c1") {
		t.Fatal("not ready")
	}
	inFlight := f.next(t, Liveness) // never answered: stopping cancels it

	// A new instance of the container: the old workers stop, new ones probe it afresh.
	m.Sync(pod, map[string]Running{"c": {ID: "c2", StartedAt: fc.Now()}}, "10.0.0.1")
	for _, k := range []Kind{Readiness, Liveness} {
		if call := f.next(t, k); call.id != "c2" {
			t.Fatalf("%s probed %s, want c2", k, call.id)
		} else {
			call.succeed()
		}
	}
	if m.Ready(pod.UID, c, "c1") {
		t.Error("the old instance is still ready")
	}
	_ = inFlight

	// The container goes away: its workers stop, and so do their goroutines.
	m.Sync(pod, map[string]Running{}, "10.0.0.1")
	waitWorkersDone(t, m)
	fc.Step(time.Minute)
	f.none(t, Readiness)
	f.none(t, Liveness)
	if m.Ready(pod.UID, c, "c2") {
		t.Error("a container without a worker is ready")
	}
	for _, e := range rec.eventList() {
		t.Errorf("unexpected event %q (a cancelled probe is not a failure)", e)
	}

	// RemovePod stops every worker of the pod.
	m.Sync(pod, map[string]Running{"c": {ID: "c3", StartedAt: fc.Now()}}, "10.0.0.1")
	f.next(t, Readiness).succeed()
	f.next(t, Liveness).succeed()
	m.RemovePod(pod.UID)
	waitWorkersDone(t, m)
	m.mu.Lock()
	n := len(m.workers)
	m.mu.Unlock()
	if n != 0 {
		t.Errorf("%d workers left", n)
	}
}

// waitWorkersDone waits until every worker goroutine the manager started has returned
// (the manager itself keeps running).
func waitWorkersDone(t *testing.T, m *Manager) {
	t.Helper()
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("probe workers still running")
	}
}

// waitForTimer waits until a worker is waiting on the fake clock.
func waitForTimer(t *testing.T, fc *testclock.FakeClock) {
	t.Helper()
	waitForWaiters(t, fc, 1)
}

// waitForWaiters waits until n timers or tickers wait on the fake clock.
func waitForWaiters(t *testing.T, fc *testclock.FakeClock, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); fc.Waiters() < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d timers wait on the clock", fc.Waiters(), n)
		}
	}
}

func countOf(list []string, s string) int {
	n := 0
	for _, e := range list {
		if e == s {
			n++
		}
	}
	return n
}
