package probe

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Kind is the probe type, spelled as upstream's events spell it.
type Kind string

const (
	Liveness  Kind = "Liveness"
	Readiness Kind = "Readiness"
	Startup   Kind = "Startup"
)

type key struct {
	uid       types.UID
	container string
	kind      Kind
}

// Running is a running container instance the manager may probe.
type Running struct {
	ID        string
	StartedAt time.Time
}

// EventFunc records an event on a pod's container.
type EventFunc func(pod *v1.Pod, c *v1.Container, eventType, reason, format string, args ...any)

// Manager owns the probe workers. Results are kept per container instance (ID), so a
// restarted container starts with fresh results.
type Manager struct {
	exec     ExecFunc
	event    EventFunc
	onChange func(types.UID)
	clock    clock.WithTicker
	start    time.Time

	mu      sync.Mutex
	ctx     context.Context
	wg      sync.WaitGroup
	workers map[key]*worker
}

// Option configures a Manager.
type Option func(*Manager)

// WithClock makes the workers wait on c (initial delays, periods, jitter) instead of the
// real clock; tests pass a fake clock.
func WithClock(c clock.WithTicker) Option { return func(m *Manager) { m.clock = c } }

// NewManager returns a Manager; onChange is called (with the pod UID) whenever a result
// changes, so the pod's worker syncs.
func NewManager(exec ExecFunc, event EventFunc, onChange func(types.UID), opts ...Option) *Manager {
	m := &Manager{exec: exec, event: event, onChange: onChange, clock: clock.RealClock{}, workers: map[key]*worker{}}
	for _, o := range opts {
		o(m)
	}
	m.start = m.clock.Now()
	return m
}

// Run lets workers run until ctx ends, then waits for them.
func (m *Manager) Run(ctx context.Context) {
	m.mu.Lock()
	m.ctx = ctx
	m.mu.Unlock()
	<-ctx.Done()
	m.wg.Wait()
}

// worker probes one container instance with one probe.
type worker struct {
	key         key
	containerID string
	cancel      context.CancelFunc

	mu     sync.Mutex
	result *Result // nil until a threshold is crossed
}

func (w *worker) get() *Result {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.result
}

func probeOf(c *v1.Container, k Kind) *v1.Probe {
	switch k {
	case Liveness:
		return c.LivenessProbe
	case Readiness:
		return c.ReadinessProbe
	}
	return c.StartupProbe
}

// Sync starts workers for the running containers of pod that have probes and stops those
// of containers no longer running (or replaced by a new instance).
func (m *Manager) Sync(pod *v1.Pod, running map[string]Running, podIP string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx == nil || m.ctx.Err() != nil {
		return
	}
	want := map[key]bool{}
	containers := append(append([]v1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for i := range containers {
		c := &containers[i]
		r, ok := running[c.Name]
		if !ok {
			continue
		}
		for _, k := range []Kind{Startup, Liveness, Readiness} {
			p := probeOf(c, k)
			if p == nil {
				continue
			}
			kk := key{pod.UID, c.Name, k}
			want[kk] = true
			if w := m.workers[kk]; w != nil && w.containerID == r.ID {
				continue
			} else if w != nil {
				w.cancel()
			}
			ctx, cancel := context.WithCancel(m.ctx)
			w := &worker{key: kk, containerID: r.ID, cancel: cancel}
			m.workers[kk] = w
			target := Target{PodIP: podIP, Container: c, ContainerID: r.ID, Exec: m.exec}
			m.wg.Go(func() { m.runWorker(ctx, w, pod, c, p, target, r.StartedAt) })
		}
	}
	for kk, w := range m.workers {
		if kk.uid == pod.UID && !want[kk] {
			w.cancel()
			delete(m.workers, kk)
		}
	}
}

// RemovePod stops every worker of a pod.
func (m *Manager) RemovePod(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for kk, w := range m.workers {
		if kk.uid == uid {
			w.cancel()
			delete(m.workers, kk)
		}
	}
}

func (m *Manager) lookup(uid types.UID, container, containerID string, k Kind) (*Result, bool) {
	m.mu.Lock()
	w := m.workers[key{uid, container, k}]
	m.mu.Unlock()
	if w == nil || w.containerID != containerID {
		return nil, false
	}
	return w.get(), true
}

// Started reports whether the container instance passed its startup probe (true when it
// has none, or when m is nil: no probes are run).
func (m *Manager) Started(uid types.UID, c *v1.Container, containerID string) bool {
	if c.StartupProbe == nil || m == nil {
		return true
	}
	r, _ := m.lookup(uid, c.Name, containerID, Startup)
	return r != nil && *r != Failure
}

// Ready reports the readiness of a container instance: true without a readiness probe once
// started; with one, only after it succeeded.
func (m *Manager) Ready(uid types.UID, c *v1.Container, containerID string) bool {
	if !m.Started(uid, c, containerID) {
		return false
	}
	if c.ReadinessProbe == nil {
		return true
	}
	r, _ := m.lookup(uid, c.Name, containerID, Readiness)
	return r != nil && *r != Failure
}

// Failed reports whether the container instance failed its liveness or startup probe (it
// must then be killed), and which.
func (m *Manager) Failed(uid types.UID, c *v1.Container, containerID string) (Kind, *v1.Probe, bool) {
	for _, k := range []Kind{Startup, Liveness} {
		if probeOf(c, k) == nil {
			continue
		}
		if r, _ := m.lookup(uid, c.Name, containerID, k); r != nil && *r == Failure {
			return k, probeOf(c, k), true
		}
	}
	return "", nil, false
}

// maxProbeRetries is how often upstream runs a probe that errored (rather than failed)
// before giving up on it for this period.
const maxProbeRetries = 3

// runWorker: wait initialDelaySeconds after the container started (plus a random jitter
// only for containers that were already running when minikubelet started, as upstream),
// probe, then probe every periodSeconds; a result is set once successThreshold successes
// or failureThreshold failures in a row are counted. Liveness and readiness probes are
// skipped until the startup probe passed. A probe that errored (the prober could not run
// it: exec failed in the runtime, unresolvable port) gets an event and is not counted,
// as upstream's worker throws such results away.
func (m *Manager) runWorker(ctx context.Context, w *worker, pod *v1.Pod, c *v1.Container, p *v1.Probe, t Target, startedAt time.Time) {
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	successNeeded, failureNeeded := max(p.SuccessThreshold, 1), max(p.FailureThreshold, 1)
	wait := startedAt.Add(time.Duration(p.InitialDelaySeconds) * time.Second).Sub(m.clock.Now())
	if startedAt.Before(m.start) && period > m.clock.Since(m.start) {
		wait = max(wait, time.Duration(rand.Float64()*float64(period)))
	}
	if !m.sleep(ctx, wait) {
		return
	}
	// A ticker, as upstream: periodSeconds is from one probe's start to the next.
	ticker := m.clock.NewTicker(period)
	defer ticker.Stop()
	kind := w.key.kind
	var successes, failures int32
	for {
		// Liveness and readiness wait until the startup probe passed.
		if kind == Startup || m.Started(pod.UID, c, w.containerID) {
			begin := m.clock.Now()
			var (
				res Result
				out string
				err error
			)
			for range maxProbeRetries {
				if res, out, err = Run(ctx, p, t); err == nil || ctx.Err() != nil {
					break
				}
			}
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				m.event(pod, c, v1.EventTypeWarning, "Unhealthy", "%s probe errored and resulted in unknown state: %s", kind, err)
			} else {
				observe(kind, res, pod, c.Name, m.clock.Since(begin))
				switch res {
				case Failure:
					m.event(pod, c, v1.EventTypeWarning, "Unhealthy", "%s probe failed: %s", kind, out)
					failures, successes = failures+1, 0
				case Warning:
					m.event(pod, c, v1.EventTypeWarning, "ProbeWarning", "%s probe warning: %s", kind, out)
					successes, failures = successes+1, 0
				default:
					successes, failures = successes+1, 0
				}
				if done := m.record(ctx, w, pod, c, successes >= successNeeded, failures >= failureNeeded); done {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		}
	}
}

// record sets the worker's result once a threshold is crossed, calls onChange only when
// the result changed, and reports whether the worker is done.
func (m *Manager) record(ctx context.Context, w *worker, pod *v1.Pod, c *v1.Container, succeeded, failed bool) bool {
	if !succeeded && !failed {
		return false
	}
	crossed := Success
	if failed {
		crossed = Failure
	}
	kind := w.key.kind
	w.mu.Lock()
	changed := w.result == nil || *w.result != crossed
	w.result = &crossed
	w.mu.Unlock()
	if changed {
		klog.FromContext(ctx).V(2).Info("Probe result changed", "probe", kind, "pod", klog.KObj(pod), "container", c.Name, "result", crossed.String())
		m.onChange(pod.UID)
	}
	// A started container stays started; a failed liveness/startup container is killed:
	// either way this worker has nothing more to learn.
	return (kind == Startup && crossed == Success) || (kind != Readiness && crossed == Failure)
}

func (m *Manager) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := m.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}
