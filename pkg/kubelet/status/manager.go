package status

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	kmetrics "github.com/minikubelet/minikubelet/pkg/kubelet/metrics"
)

// Static pods' annotations (set by pkg/kubelet/source), as upstream.
const (
	annotationConfigSource = "kubernetes.io/config.source"
	annotationConfigMirror = "kubernetes.io/config.mirror"
)

type versioned struct {
	namespace, name string
	uid             types.UID
	// static pods (from manifest files) are written to their mirror pod in the API.
	static  bool
	status  v1.PodStatus
	version uint64
}

// Manager is the only writer of PodStatus. Workers hand it statuses (SetStatus); one sync
// goroutine patches the status subresource for every pod whose newest status is not yet
// written, so a burst of changes becomes one write and an older status never overwrites a
// newer one.
type Manager struct {
	client kubernetes.Interface
	wake   chan struct{}

	mu      sync.Mutex
	pending map[types.UID]*versioned // newest status per pod
	written map[types.UID]uint64     // version last written
	// tried is the version last attempted: a wake writes only statuses newer than their
	// last attempt, so a write that failed (a pod deleted a moment ago, which the node
	// authorizer forbids reading) waits for the retry tick instead of being tried again
	// on every other pod's change.
	tried      map[types.UID]uint64
	retryEvery time.Duration // how often failed writes are tried again
	// known is the resourceVersion of the pod as last read or written: the API held
	// exactly that object then.
	known map[types.UID]string
	// Cached, if set, gives the pod as the node's informer holds it (nil: not there).
	// When it holds the version last read or written, the next write is computed against
	// it instead of reading the pod again.
	Cached func(namespace, name string) *v1.Pod
	// OnWritten, if set, is called after each successful write (for metrics/tests).
	OnWritten func(pod *v1.Pod)
	// Trace records every transition (served by the kubelet API's debug endpoint).
	Trace *Trace
}

// NewManager returns a Manager writing through client.
func NewManager(client kubernetes.Interface) *Manager {
	return &Manager{client: client, wake: make(chan struct{}, 1), Trace: NewTrace(), retryEvery: 5 * time.Second,
		pending: map[types.UID]*versioned{}, written: map[types.UID]uint64{}, tried: map[types.UID]uint64{},
		known: map[types.UID]string{}}
}

// SetStatus records the newest status of pod and wakes the writer. As upstream's
// SetPodStatus, the status observes the generation of the pod given (the spec the node
// acted on, even one it cannot apply), never going back below what was observed before.
func (m *Manager) SetStatus(pod *v1.Pod, st v1.PodStatus) {
	m.mu.Lock()
	cur := m.pending[pod.UID]
	prev := pod.Status.ObservedGeneration
	if cur != nil {
		prev = cur.status.ObservedGeneration
	}
	st.ObservedGeneration = max(pod.Generation, prev)
	if cur != nil && apiequality.Semantic.DeepEqual(cur.status, st) {
		m.mu.Unlock()
		return
	}
	var version uint64 = 1
	if cur != nil {
		version = cur.version + 1
	}
	m.pending[pod.UID] = &versioned{namespace: pod.Namespace, name: pod.Name, uid: pod.UID, status: st, version: version,
		static: pod.Annotations[annotationConfigSource] == "file"}
	m.mu.Unlock()
	kmetrics.StatusChanged()
	m.Trace.Record(pod, st)
	m.wakeUp()
}

// wakeUp makes the writer look at the pending statuses (cap 1: any number of calls
// become one pass).
func (m *Manager) wakeUp() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Status returns the newest status the manager holds for uid.
func (m *Manager) Status(uid types.UID) (v1.PodStatus, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v := m.pending[uid]; v != nil {
		return *v.status.DeepCopy(), true
	}
	return v1.PodStatus{}, false
}

// Forget drops a pod that is gone from the API.
func (m *Manager) Forget(uid types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pending, uid)
	delete(m.written, uid)
	delete(m.tried, uid)
	delete(m.known, uid)
	m.Trace.Forget(uid)
}

// Rewrite makes the writer write uid's newest status again (a static pod got a new
// mirror pod, which holds no status yet).
func (m *Manager) Rewrite(uid types.UID) {
	m.mu.Lock()
	// A new version of the same status rather than forgetting the last write: a write
	// in flight (to the mirror being replaced, which the API refuses) would otherwise
	// mark the status written when it ends, and the new mirror would never get it.
	if v := m.pending[uid]; v != nil {
		nv := *v
		nv.version++
		m.pending[uid] = &nv
	}
	m.mu.Unlock()
	m.wakeUp()
}

// Reconcile looks at a pod as the API now holds it (its mirror pod, for a static pod) and
// writes the newest status again if the API's differs from what was written: another
// writer changed what the node owns. As upstream's needsReconcile; the node lifecycle
// controller sets Ready=False on every pod of a node it saw NotReady, and only the node
// sets it back.
func (m *Manager) Reconcile(api *v1.Pod) {
	uid := api.UID
	if mirrorOf := api.Annotations[annotationConfigMirror]; mirrorOf != "" {
		uid = types.UID(mirrorOf)
	}
	m.mu.Lock()
	v := m.pending[uid]
	if v != nil && m.written[uid] < v.version && m.tried[uid] >= v.version {
		// A write that failed: the API's change (the pod readable now) is the moment to
		// try it again, before the retry tick.
		delete(m.tried, uid)
		m.mu.Unlock()
		m.wakeUp()
		return
	}
	if v == nil || m.written[uid] < v.version { // nothing written yet, or a write is due anyway
		m.mu.Unlock()
		return
	}
	want := *v.status.DeepCopy()
	m.mu.Unlock()
	want.Conditions = WithForeignConditions(want.Conditions, api.Status.Conditions)
	if p, err := statusPatch(api.UID, api.Status, want); err == nil && p == nil {
		return
	}
	m.Rewrite(uid)
}

// Flush writes uid's newest status now (used before deleting a terminated pod).
func (m *Manager) Flush(ctx context.Context, uid types.UID) error {
	return m.syncOne(ctx, uid)
}

// Run writes statuses until ctx ends; failed writes are retried every few seconds. Without
// a client (a standalone node) statuses are only kept, for /pods.
func (m *Manager) Run(ctx context.Context) {
	if m.client == nil {
		<-ctx.Done()
		return
	}
	retry := time.NewTicker(m.retryEvery)
	defer retry.Stop()
	for {
		retrying := false
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		case <-retry.C:
			retrying = true
		}
		m.mu.Lock()
		var todo []types.UID
		for uid, v := range m.pending {
			if m.written[uid] < v.version && (retrying || m.tried[uid] < v.version) {
				todo = append(todo, uid)
			}
		}
		m.mu.Unlock()
		for _, uid := range todo {
			if err := m.syncOne(ctx, uid); err != nil {
				klog.FromContext(ctx).Error(err, "Writing pod status failed; will retry", "podUID", uid)
			}
		}
	}
}

// syncOne writes uid's newest status. As upstream, the patch is computed against what the
// API really holds (so removed fields are removed), conditions other writers own are taken
// from there, and a pod that is gone or was replaced by a new one of the same name is
// dropped. What the API holds is read (a GET), unless the informer holds the very version
// this manager last read or wrote (see current).
func (m *Manager) syncOne(ctx context.Context, uid types.UID) error {
	if m.client == nil {
		return nil
	}
	m.mu.Lock()
	v := m.pending[uid]
	if v == nil || m.written[uid] >= v.version {
		m.mu.Unlock()
		return nil
	}
	v = &versioned{namespace: v.namespace, name: v.name, uid: v.uid, status: *v.status.DeepCopy(), version: v.version, static: v.static}
	m.tried[uid] = v.version
	m.mu.Unlock()

	pods := m.client.CoreV1().Pods(v.namespace)
	cur, err := m.current(ctx, v)
	// A static pod's status goes to its mirror pod (which names the static pod's UID);
	// until that mirror exists, the status waits.
	mirror := v.static && err == nil && cur.Annotations[annotationConfigMirror] == string(uid)
	switch {
	case v.static && (apierrors.IsNotFound(err) || err == nil && !mirror):
		return nil
	case apierrors.IsNotFound(err) || err == nil && cur.UID != uid && !mirror:
		m.Forget(uid)
		return nil
	case apierrors.IsForbidden(err) && m.Cached != nil && !m.holds(v):
		// The Node authorizer's answer for a pod deleted a moment ago, which the
		// informer has dropped too: gone, as NotFound.
		m.Forget(uid)
		return nil
	case apierrors.IsForbidden(err):
		// The Node authorizer answers so, briefly, for a pod just bound (and for one
		// deleted whose removal the informer has not seen yet): not an error; retried
		// (on the retry tick or the pod's next status) until the worker forgets the pod.
		klog.FromContext(ctx).V(2).Info("Pod status not writable yet or any more", "pod", klog.KRef(v.namespace, v.name), "err", err)
		return nil
	case err != nil:
		return fmt.Errorf("get pod %s/%s: %w", v.namespace, v.name, err)
	}
	v.status.Conditions = WithForeignConditions(v.status.Conditions, cur.Status.Conditions)
	patch, err := statusPatch(cur.UID, cur.Status, v.status)
	if err != nil {
		return err
	}
	if patch == nil {
		m.markWritten(uid, v.version)
		return nil
	}
	out, err := pods.Patch(ctx, v.name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	kmetrics.StatusWritten()
	switch {
	case v.static && (apierrors.IsNotFound(err) || apierrors.IsConflict(err)):
		return nil // the mirror is being replaced; the next one gets the status
	case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		m.Forget(uid) // gone, or the UID precondition failed: a new pod of the same name
		return nil
	case apierrors.IsInvalid(err):
		// Retrying the same status cannot help; later statuses are still written.
		m.markWritten(uid, v.version)
		return fmt.Errorf("API rejected status of %s/%s: %w", v.namespace, v.name, err)
	case err != nil:
		return fmt.Errorf("patch status of %s/%s: %w", v.namespace, v.name, err)
	}
	m.markWritten(uid, v.version)
	m.setKnown(uid, out.ResourceVersion)
	if m.OnWritten != nil {
		m.OnWritten(out)
	}
	return nil
}

// current is the pod as the API holds it. The informer's copy serves when it is the
// version last read or written here: the API held exactly that then, and a change by
// another writer since is a newer version, which reaches Reconcile and so a rewrite
// against a fresh read. Otherwise (the informer is behind or ahead, a static pod's
// mirror, no informer) the pod is read.
func (m *Manager) current(ctx context.Context, v *versioned) (*v1.Pod, error) {
	if m.Cached != nil && !v.static {
		m.mu.Lock()
		known := m.known[v.uid]
		m.mu.Unlock()
		if p := m.Cached(v.namespace, v.name); p != nil && known != "" && p.UID == v.uid && p.ResourceVersion == known {
			return p, nil
		}
	}
	cur, err := m.client.CoreV1().Pods(v.namespace).Get(ctx, v.name, metav1.GetOptions{})
	if err == nil && cur.UID == v.uid {
		m.setKnown(v.uid, cur.ResourceVersion)
	}
	return cur, err
}

// holds reports whether the node's informer holds v's pod (by UID).
func (m *Manager) holds(v *versioned) bool {
	p := m.Cached(v.namespace, v.name)
	return p != nil && p.UID == v.uid
}

func (m *Manager) setKnown(uid types.UID, rv string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending[uid] != nil { // not forgotten meanwhile
		m.known[uid] = rv
	}
}

func (m *Manager) markWritten(uid types.UID, version uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pending[uid] != nil && m.written[uid] < version {
		m.written[uid] = version
	}
}

// statusPatch is a strategic merge patch from old to new status (nil if there is no
// change), carrying the pod UID as a precondition so that a recreated pod of the same
// name is never patched.
func statusPatch(uid types.UID, old, new v1.PodStatus) ([]byte, error) {
	o, err := json.Marshal(v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: uid}, Status: old})
	if err != nil {
		return nil, err
	}
	n, err := json.Marshal(v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: uid}, Status: new})
	if err != nil {
		return nil, err
	}
	p, err := strategicpatch.CreateTwoWayMergePatch(o, n, v1.Pod{})
	if err != nil {
		return nil, err
	}
	if string(p) == "{}" {
		return nil, nil
	}
	// Add the UID precondition.
	var obj map[string]any
	if err := json.Unmarshal(p, &obj); err != nil {
		return nil, err
	}
	obj["metadata"] = map[string]any{"uid": string(uid)}
	return json.Marshal(obj)
}
