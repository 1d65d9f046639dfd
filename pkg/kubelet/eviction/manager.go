package eviction

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/klog/v2"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	"k8s.io/utils/clock"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/kubelet/metrics"
)

// Evictor stops an evicted pod: its containers are killed within gracePeriod seconds and
// it is reported Failed with reason Evicted, the message and (for pressure) the
// DisruptionTarget condition. It returns once the containers have stopped.
type Evictor interface {
	Evict(ctx context.Context, pod *v1.Pod, gracePeriod int64, message string, condition *v1.PodCondition) error
}

// Config is what a Manager needs; New rejects missing fields.
type Config struct {
	Thresholds []Threshold
	// PressureTransitionPeriod is how long a pressure condition stays after its last
	// threshold stopped being met (upstream's evictionPressureTransitionPeriod).
	PressureTransitionPeriod time.Duration
	// MaxPodGracePeriodSeconds bounds the grace period of soft evictions.
	MaxPodGracePeriodSeconds int64
	// Interval is how often the signals are measured (upstream's 10s).
	Interval time.Duration
	// LocalStorageIsolation enforces ephemeral-storage limits and emptyDir size limits
	// (upstream's localStorageCapacityIsolation).
	LocalStorageIsolation bool

	// Summary measures the node (the stats provider's full summary).
	Summary func(ctx context.Context) (*statsapi.Summary, error)
	// DedicatedImageFs says whether the runtime's images live on another filesystem than
	// the kubelet's root directory.
	DedicatedImageFs func(ctx context.Context) (bool, error)
	// ActivePods are the pods whose containers may run.
	ActivePods func() []*v1.Pod
	Evictor    Evictor
	// DeleteUnusedContainers and DeleteUnusedImages reclaim disk before any pod is
	// evicted (nil: nothing to reclaim that way).
	DeleteUnusedContainers func(ctx context.Context) error
	DeleteUnusedImages     func(ctx context.Context) error
	Recorder               record.EventRecorder
	// Node is the object the EvictionThresholdMet events are about.
	Node  *v1.ObjectReference
	Clock clock.Clock
}

// Manager is the eviction manager.
type Manager struct {
	cfg       Config
	dedicated *bool // learnt on the first round

	mu         sync.RWMutex
	t          tracker
	conditions []v1.NodeConditionType
}

// New checks cfg.
func New(cfg Config) (*Manager, error) {
	if cfg.Summary == nil || cfg.DedicatedImageFs == nil || cfg.ActivePods == nil || cfg.Evictor == nil || cfg.Recorder == nil || cfg.Node == nil {
		return nil, errors.New("eviction: Summary, DedicatedImageFs, ActivePods, Evictor, Recorder and Node are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Manager{cfg: cfg}, nil
}

// Run measures and acts every Interval until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	logger := klog.FromContext(ctx)
	if len(m.cfg.Thresholds) == 0 && !m.cfg.LocalStorageIsolation {
		return
	}
	logger.Info("Eviction manager: starting control loop")
	for {
		if err := m.synchronize(ctx); err != nil {
			logger.Error(err, "Eviction manager: failed to synchronize")
		}
		select {
		case <-ctx.Done():
			return
		case <-m.cfg.Clock.After(m.cfg.Interval):
		}
	}
}

// Conditions are the node's current pressure conditions.
func (m *Manager) Conditions() []v1.NodeConditionType {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Clone(m.conditions)
}

// Admit is upstream's eviction admission: under memory pressure alone only BestEffort
// pods are refused (unless they tolerate the memory-pressure taint), under any other
// pressure every pod; critical pods always get in. It returns the reason and message
// ("" = admitted).
func (m *Manager) Admit(pod *v1.Pod) (reason, msg string) {
	conds := m.Conditions()
	if len(conds) == 0 || IsCritical(pod) {
		return "", ""
	}
	if len(conds) == 1 && conds[0] == v1.NodeMemoryPressure {
		if cri.QOSClass(pod) == v1.PodQOSBestEffort {
			taint := &v1.Taint{Key: v1.TaintNodeMemoryPressure, Effect: v1.TaintEffectNoSchedule}
			if corev1helpers.TolerationsTolerateTaint(klog.Background(), pod.Spec.Tolerations, taint, false) {
				return "", ""
			}
		} else {
			return "", ""
		}
	}
	return Reason, conditionMessage(conds)
}

// synchronize is one round: measure, track, enforce local storage limits, then for the
// most urgent threshold reclaim node-level resources and, if that is not enough, evict
// the first pod of its ranking that can be evicted.
func (m *Manager) synchronize(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	if m.dedicated == nil {
		d, err := m.cfg.DedicatedImageFs(ctx)
		if err != nil {
			return err
		}
		m.dedicated = &d
	}
	pods := m.cfg.ActivePods()
	sum, err := m.cfg.Summary(ctx)
	if err != nil {
		logger.Error(err, "Eviction manager: failed to get summary stats")
		return nil
	}
	obs, stats := observe(sum), podStatsByUID(sum)
	ts := m.cfg.Thresholds
	m.mu.Lock()
	act := m.t.step(ts, obs, m.cfg.Clock.Now(), m.cfg.PressureTransitionPeriod)
	m.conditions = slices.Clone(m.t.conditions)
	m.mu.Unlock()

	if m.cfg.LocalStorageIsolation && m.localStorage(ctx, pods, stats) {
		return nil
	}
	if len(act) == 0 {
		return nil
	}
	act = byPriority(ts, act)
	t := ts[act[0]]
	res := signalResource[t.Signal]
	logger.Info("Eviction manager: attempting to reclaim", "resourceName", res)
	m.cfg.Recorder.Eventf(m.cfg.Node, v1.EventTypeWarning, "EvictionThresholdMet", "Attempting to reclaim %s", res)
	if m.reclaimNodeLevel(ctx, t.Signal) {
		logger.Info("Eviction manager: able to reduce resource pressure without evicting pods.", "resourceName", res)
		return nil
	}
	if len(pods) == 0 {
		logger.Error(nil, "Eviction manager: eviction thresholds have been met, but no pods are active to evict")
		return nil
	}
	rankFor(t.Signal, *m.dedicated)(pods, stats)
	logger.Info("Eviction manager: pods ranked for eviction", "pods", klog.KObjSlice(pods))
	for _, i := range act { // how old the stats behind this round's decision are
		if at := obs[ts[i].Signal].time; !at.IsZero() {
			metrics.EvictionStatsAge(string(ts[i].Signal), m.cfg.Clock.Since(at))
		}
	}
	for _, pod := range pods {
		grace := int64(1) // upstream's immediate eviction
		if !t.hard() {
			grace = m.cfg.MaxPodGracePeriodSeconds
			if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
				grace = min(grace, *g)
			}
		}
		msg, ann := message(res, pod, stats, ts, act, obs)
		cond := &v1.PodCondition{Type: v1.DisruptionTarget, ObservedGeneration: pod.Generation, Status: v1.ConditionTrue,
			Reason: v1.PodReasonTerminationByKubelet, Message: msg}
		if m.evict(ctx, pod, grace, msg, ann, cond) {
			metrics.Evicted(string(t.Signal))
			return nil
		}
	}
	logger.Info("Eviction manager: unable to evict any pods from the node")
	return nil
}

// localStorage evicts every pod over a local storage limit; true if any was.
func (m *Manager) localStorage(ctx context.Context, pods []*v1.Pod, stats statsFunc) bool {
	evicted := false
	for _, pod := range pods {
		ps, ok := stats(pod)
		if !ok {
			continue
		}
		msg, signal := overLocalLimit(pod, ps, *m.dedicated)
		if msg != "" && m.evict(ctx, pod, 1, msg, nil, nil) {
			metrics.Evicted(signal)
			evicted = true
		}
	}
	return evicted
}

// reclaimNodeLevel removes dead containers and unused images for a disk signal (with a
// dedicated image filesystem, only for its signals), then measures again: true if no
// threshold is met any more, counting the minimum reclaims.
func (m *Manager) reclaimNodeLevel(ctx context.Context, sig Signal) bool {
	logger := klog.FromContext(ctx)
	if signalCondition[sig] != v1.NodeDiskPressure {
		return false
	}
	if *m.dedicated && (sig == SignalNodeFsAvailable || sig == SignalNodeFsInodesFree) {
		return false
	}
	for _, f := range []func(context.Context) error{m.cfg.DeleteUnusedContainers, m.cfg.DeleteUnusedImages} {
		if f == nil {
			continue
		}
		if err := f(ctx); err != nil {
			logger.Info("Eviction manager: unexpected error when attempting to reduce resource pressure", "resourceName", signalResource[sig], "err", err)
		}
	}
	sum, err := m.cfg.Summary(ctx)
	if err != nil {
		logger.Error(err, "Eviction manager: failed to get summary stats after resource reclaim")
		return false
	}
	return len(met(m.cfg.Thresholds, every(m.cfg.Thresholds), observe(sum), true)) == 0
}

// evict records the Evicted event and stops the pod; false for a critical pod, which is
// never evicted (upstream: static pods are not readmitted afterwards).
func (m *Manager) evict(ctx context.Context, pod *v1.Pod, grace int64, msg string, ann map[string]string, cond *v1.PodCondition) bool {
	logger := klog.FromContext(ctx)
	if IsCritical(pod) {
		logger.Error(nil, "Eviction manager: cannot evict a critical pod", "pod", klog.KObj(pod))
		return false
	}
	m.cfg.Recorder.AnnotatedEventf(pod, ann, v1.EventTypeWarning, Reason, "%s", msg)
	if err := m.cfg.Evictor.Evict(ctx, pod, grace, msg, cond); err != nil {
		logger.Error(err, "Eviction manager: pod failed to evict", "pod", klog.KObj(pod))
	} else {
		logger.Info("Eviction manager: pod is evicted successfully", "pod", klog.KObj(pod))
	}
	return true
}

// IsCritical is upstream's IsCriticalPod: a static or mirror pod, or one of
// system-critical priority (2000000000 and up).
func IsCritical(pod *v1.Pod) bool {
	if src := pod.Annotations["kubernetes.io/config.source"]; src != "" && src != "api" {
		return true
	}
	if _, mirror := pod.Annotations["kubernetes.io/config.mirror"]; mirror {
		return true
	}
	return pod.Spec.Priority != nil && *pod.Spec.Priority >= 2000000000
}
