// Package allocation keeps what the node has granted each pod (upstream's allocation
// manager): the resources a pod was admitted or last resized with, what has been applied
// to its running containers (actuated), and the pod's resize conditions
// (PodResizePending, PodResizeInProgress). Both resource records are checkpointed under
// the root dir, so a restarted agent neither over-commits nor re-applies a resize.
package allocation

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// CheckpointFile is the file under the root dir (upstream's allocated_pods_state).
const CheckpointFile = "allocated_pods_state"

// PodInfo is one pod's record: resources by container name (init containers that are
// sidecars and regular containers; upstream's resizable containers) and the pod-level
// resources.
type PodInfo struct {
	Containers map[string]v1.ResourceRequirements `json:"containers,omitempty"`
	Pod        *v1.ResourceRequirements           `json:"pod,omitempty"`
}

type record struct {
	Allocated *PodInfo                           `json:"allocated,omitempty"`
	Actuated  map[string]v1.ResourceRequirements `json:"actuated,omitempty"`
}

// conditions are a pod's resize conditions (nil: absent).
type conditions struct{ pending, inProgress *v1.PodCondition }

// Manager holds the records; safe for concurrent use.
type Manager struct {
	path  string
	now   func() time.Time
	mu    sync.Mutex
	pods  map[types.UID]*record
	conds map[types.UID]*conditions
}

// NewManager loads the checkpoint at dir/CheckpointFile (dir "": kept in memory only). A
// checkpoint that cannot be read is an error: the agent must not guess what it granted.
func NewManager(dir string) (*Manager, error) {
	m := &Manager{now: time.Now, pods: map[types.UID]*record{}, conds: map[types.UID]*conditions{}}
	if dir == "" {
		return m, nil
	}
	m.path = filepath.Join(dir, CheckpointFile)
	b, err := os.ReadFile(m.path)
	switch {
	case os.IsNotExist(err):
		return m, nil
	case err != nil:
		return nil, err
	}
	if err := json.Unmarshal(b, &m.pods); err != nil {
		return nil, fmt.Errorf("reading %s: %w", m.path, err)
	}
	if m.pods == nil {
		m.pods = map[types.UID]*record{}
	}
	return m, nil
}

// InfoFor is the record of pod's spec: its resizable containers' and its pod-level
// resources.
func InfoFor(pod *v1.Pod) PodInfo {
	info := PodInfo{Containers: map[string]v1.ResourceRequirements{}}
	if pod.Spec.Resources != nil {
		info.Pod = pod.Spec.Resources.DeepCopy()
	}
	for _, c := range ResizableContainers(pod) {
		info.Containers[c.Name] = *c.Resources.DeepCopy()
	}
	return info
}

// ResizableContainers are pod's sidecars and regular containers, in spec order.
func ResizableContainers(pod *v1.Pod) []*v1.Container {
	var out []*v1.Container
	for i := range pod.Spec.InitContainers {
		if c := &pod.Spec.InitContainers[i]; Resizable(c, true) {
			out = append(out, c)
		}
	}
	for i := range pod.Spec.Containers {
		out = append(out, &pod.Spec.Containers[i])
	}
	return out
}

// Resizable is upstream's: regular containers and sidecars (init containers with
// restartPolicy Always); in v1.37 other init containers too (their gate is GA), but they
// have finished by the time a running pod is resized.
func Resizable(c *v1.Container, init bool) bool {
	return !init || c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways
}

// Has reports whether the pod has an allocation.
func (m *Manager) Has(uid types.UID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.pods[uid]
	return r != nil && r.Allocated != nil
}

// Allocate records pod's spec as its allocation (at admission, or an accepted resize).
func (m *Manager) Allocate(pod *v1.Pod) error {
	info := InfoFor(pod)
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.rec(pod.UID)
	r.Allocated = &info
	return m.save()
}

// AllocateIfNone records pod's spec as its allocation unless it has one (a pod found
// running, or admitted before).
func (m *Manager) AllocateIfNone(pod *v1.Pod) error {
	if m.Has(pod.UID) {
		return nil
	}
	return m.Allocate(pod)
}

// Allocated is pod with its allocation in place of the spec's resources (a copy only if
// they differ), and whether they differed: a resize not (yet) allocated.
func (m *Manager) Allocated(pod *v1.Pod) (*v1.Pod, bool) {
	m.mu.Lock()
	r := m.pods[pod.UID]
	var info *PodInfo
	if r != nil && r.Allocated != nil {
		info = r.Allocated
	}
	m.mu.Unlock()
	if info == nil {
		return pod, false
	}
	return apply(pod, info)
}

// apply overwrites the pod's resources with info's where they differ.
func apply(pod *v1.Pod, info *PodInfo) (*v1.Pod, bool) {
	differs := info.Pod != nil && !apiequality.Semantic.DeepEqual(pod.Spec.Resources, info.Pod)
	for _, list := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if a, ok := info.Containers[list[i].Name]; ok && !apiequality.Semantic.DeepEqual(list[i].Resources, a) {
				differs = true
			}
		}
	}
	if !differs {
		return pod, false
	}
	out := pod.DeepCopy()
	if info.Pod != nil {
		out.Spec.Resources = info.Pod.DeepCopy()
	}
	for _, list := range [][]v1.Container{out.Spec.InitContainers, out.Spec.Containers} {
		for i := range list {
			if a, ok := info.Containers[list[i].Name]; ok {
				list[i].Resources = *a.DeepCopy()
			}
		}
	}
	return out, true
}

// SetActuated records the resources applied to the pod's running container name (at its
// creation, or after the runtime accepted an update).
func (m *Manager) SetActuated(uid types.UID, name string, r v1.ResourceRequirements) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec := m.rec(uid)
	if rec.Actuated == nil {
		rec.Actuated = map[string]v1.ResourceRequirements{}
	}
	if old, ok := rec.Actuated[name]; ok && apiequality.Semantic.DeepEqual(old, r) {
		return nil
	}
	rec.Actuated[name] = *r.DeepCopy()
	return m.save()
}

// Actuated is what was applied to the pod's container name, if recorded.
func (m *Manager) Actuated(uid types.UID, name string) (v1.ResourceRequirements, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.pods[uid]; r != nil {
		a, ok := r.Actuated[name]
		return a, ok
	}
	return v1.ResourceRequirements{}, false
}

// Remove forgets the pod (it is gone from the node).
func (m *Manager) Remove(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.conds, uid)
	if _, ok := m.pods[uid]; ok {
		delete(m.pods, uid)
		_ = m.save() // a stale record is dropped with the next write
	}
}

func (m *Manager) rec(uid types.UID) *record {
	r := m.pods[uid]
	if r == nil {
		r = &record{}
		m.pods[uid] = r
	}
	return r
}

// save writes the checkpoint atomically (m.mu held).
func (m *Manager) save() error {
	if m.path == "" {
		return nil
	}
	b, err := json.Marshal(m.pods)
	if err != nil {
		return err
	}
	tmp := m.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, m.path)
}

// SetPending sets PodResizePending (any reason other than Infeasible is Deferred, as
// upstream) and reports whether its reason or generation changed.
func (m *Manager) SetPending(uid types.UID, reason, message string, generation int64) bool {
	if reason != v1.PodReasonInfeasible {
		reason = v1.PodReasonDeferred
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.cond(uid)
	prev := c.pending
	c.pending = m.condition(v1.PodResizePending, prev, reason, message, generation)
	return prev == nil || prev.Reason != reason || prev.ObservedGeneration != generation
}

// ClearPending drops PodResizePending.
func (m *Manager) ClearPending(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.conds[uid]; c != nil {
		c.pending = nil
	}
}

// Pending reports whether the pod has a PodResizePending condition, and its reason.
func (m *Manager) Pending(uid types.UID) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.conds[uid]; c != nil && c.pending != nil {
		return c.pending.Reason, true
	}
	return "", false
}

// SetInProgress sets PodResizeInProgress as upstream: an existing condition keeps its
// generation, and its reason and message unless new ones are given. It returns the
// condition's generation and whether it changed.
func (m *Manager) SetInProgress(uid types.UID, reason, message string, generation int64) (int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.cond(uid)
	prev := c.inProgress
	if prev != nil {
		if reason == "" && message == "" {
			reason, message = prev.Reason, prev.Message
		}
		generation = prev.ObservedGeneration
	}
	c.inProgress = m.condition(v1.PodResizeInProgress, prev, reason, message, generation)
	changed := prev == nil || prev.Reason != reason || prev.Message != message
	return generation, changed
}

// ClearInProgress drops PodResizeInProgress, returning its generation if there was one.
func (m *Manager) ClearInProgress(uid types.UID) (int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.conds[uid]
	if c == nil || c.inProgress == nil {
		return 0, false
	}
	g := c.inProgress.ObservedGeneration
	c.inProgress = nil
	return g, true
}

// Conditions are the pod's resize conditions, PodResizePending first, as upstream lists
// them.
func (m *Manager) Conditions(uid types.UID) []v1.PodCondition {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.conds[uid]
	if c == nil {
		return nil
	}
	var out []v1.PodCondition
	for _, p := range []*v1.PodCondition{c.pending, c.inProgress} {
		if p != nil {
			out = append(out, *p.DeepCopy())
		}
	}
	return out
}

// Restore takes the resize conditions a pod's status already has (an agent restarted
// mid-resize), unless some are known.
func (m *Manager) Restore(pod *v1.Pod) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conds[pod.UID] != nil {
		return
	}
	c := &conditions{}
	for _, pc := range pod.Status.Conditions {
		pc := pc
		switch pc.Type {
		case v1.PodResizePending:
			c.pending = &pc
		case v1.PodResizeInProgress:
			c.inProgress = &pc
		}
	}
	m.conds[pod.UID] = c
}

func (m *Manager) cond(uid types.UID) *conditions {
	c := m.conds[uid]
	if c == nil {
		c = &conditions{}
		m.conds[uid] = c
	}
	return c
}

// condition is upstream's updatedPodResizeCondition: probed now, transitioned now unless
// the reason stayed.
func (m *Manager) condition(t v1.PodConditionType, old *v1.PodCondition, reason, message string, generation int64) *v1.PodCondition {
	now := metav1.NewTime(m.now())
	transition := now
	if old != nil && old.Reason == reason {
		transition = old.LastTransitionTime
	}
	return &v1.PodCondition{Type: t, Status: v1.ConditionTrue, LastProbeTime: now, LastTransitionTime: transition,
		ObservedGeneration: generation, Reason: reason, Message: message}
}
