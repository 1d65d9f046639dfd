// Package userns gives pods with `spec.hostUsers: false` their own user namespace, as the
// upstream kubelet's pkg/kubelet/userns does: the kubelet owns a range of host IDs (the
// "kubelet" user's subordinate IDs, else everything from idsPerPod up), carved into blocks
// of userNamespaces.idsPerPod (default 65536); each such pod gets one block, mapped to IDs
// 0..idsPerPod-1 inside, recorded in <root-dir>/pods/<uid>/userns (upstream's file and
// JSON, so allocations survive restarts and either kubelet reads them), and released when
// the pod is removed. A runtime (handler) without user namespace support fails the pod's
// sandbox with upstream's message: such a pod never runs with the host's users.
package userns

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// unitLength is the granularity of a pod's range: the ID space of one user namespace as
// runtimes expect it (upstream's userNsUnitLength).
const unitLength = 65536

// DefaultIDsPerPod is upstream's default userNamespaces.idsPerPod.
const DefaultIDsPerPod = unitLength

// Runtime says whether a runtime handler ("" is the default) supports user namespaces
// (cri.Client.HandlerSupportsUserNamespaces).
type Runtime interface {
	HandlerSupportsUserNamespaces(ctx context.Context, handler string) (bool, error)
}

// Config is what a Manager needs.
type Config struct {
	// PodsDir holds the pods' directories (<root-dir>/pods); each allocation is kept in
	// <PodsDir>/<uid>/userns.
	PodsDir string
	// IDsPerPod is userNamespaces.idsPerPod (0: DefaultIDsPerPod); validated by config.
	IDsPerPod int64
	// MaxPods must fit in the kubelet's range.
	MaxPods int
	Runtime Runtime
	// Mappings gives the kubelet's ID range (first ID, length) for idsPerPod; nil:
	// KubeletMappings (the "kubelet" user's subordinate IDs, else upstream's default).
	Mappings func(idsPerPod uint32) (uint32, uint32, error)
	// Rand picks where the search for a free block starts, in [0, n) (nil: random, as
	// upstream's allocation bitmap).
	Rand func(n int) int
}

// Manager allocates the pods' ID blocks. Its zero value is not usable; a nil *Manager
// gives every pod the host's user namespace and refuses `hostUsers: false`.
type Manager struct {
	podsDir   string
	idsPerPod uint32
	off, n    int // the kubelet's range in blocks: [off, off+n)
	runtime   Runtime
	rand      func(n int) int

	mu     sync.Mutex
	usedBy map[types.UID]uint32 // pod -> first host ID of its block
	slots  map[int]types.UID    // block index (from 0) -> pod
}

// New makes the manager and records the blocks of the pods already on disk, as upstream's
// MakeUserNsManager: a pod directory whose userns file cannot be read or does not fit
// the range fails the start, so no block is ever handed out twice.
func New(ctx context.Context, cfg Config) (*Manager, error) {
	ids := uint32(DefaultIDsPerPod)
	if cfg.IDsPerPod != 0 {
		ids = uint32(cfg.IDsPerPod)
	}
	if cfg.Mappings == nil {
		cfg.Mappings = KubeletMappings
	}
	first, length, err := cfg.Mappings(ids)
	if err != nil {
		return nil, fmt.Errorf("kubelet mappings: %w", err)
	}
	off, n, err := blocks(first, length, ids, cfg.MaxPods)
	if err != nil {
		return nil, err
	}
	m := &Manager{podsDir: cfg.PodsDir, idsPerPod: ids, off: off, n: n, runtime: cfg.Runtime, rand: cfg.Rand,
		usedBy: map[types.UID]uint32{}, slots: map[int]types.UID{}}
	if m.rand == nil {
		m.rand = rand.IntN
	}
	klog.FromContext(ctx).V(5).Info("User namespace manager mapping", "offset", off, "length", n, "idsPerPod", ids)
	entries, err := os.ReadDir(cfg.PodsDir)
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pods from disk: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		uid := types.UID(e.Name())
		if _, found, err := m.readRecorded(uid); err != nil {
			return nil, fmt.Errorf("record pod mappings for existing pod %q: %w", uid, err)
		} else if found {
			klog.FromContext(ctx).V(5).Info("Pod user namespace read from disk", "podUID", uid)
		}
	}
	return m, nil
}

// blocks checks the kubelet's range as upstream and returns it in blocks of ids.
func blocks(first, length, ids uint32, maxPods int) (off, n int, err error) {
	switch {
	case ids%unitLength != 0:
		return 0, 0, fmt.Errorf("kubelet user namespace length %v is not a multiple of %d", ids, unitLength)
	case first%ids != 0:
		return 0, 0, fmt.Errorf("kubelet user assigned ID %v is not a multiple of %v", first, ids)
	case first < ids:
		// Host ID 0 (root) must never be mapped into a pod.
		return 0, 0, fmt.Errorf("kubelet user assigned ID %v must be greater or equal to %v", first, ids)
	case length%ids != 0:
		return 0, 0, fmt.Errorf("kubelet user assigned IDs length %v is not a multiple of %v", length, ids)
	case int64(length/ids) < int64(maxPods):
		return 0, 0, fmt.Errorf("kubelet user assigned IDs are not enough to support %v pods", maxPods)
	}
	return int(first / ids), int(length / ids), nil
}

// PodNamespace is the user namespace option of the pod's sandbox and containers, as
// upstream's GetOrCreateUserNamespaceMappings: NODE unless `hostUsers: false`; then, if
// the runtime handler supports it, POD with the pod's block (read from its file, or
// allocated and written now) mapped from ID 0; else upstream's refusal.
func (m *Manager) PodNamespace(ctx context.Context, pod *v1.Pod, handler string) (*runtimeapi.UserNamespace, error) {
	if pod.Spec.HostUsers == nil || *pod.Spec.HostUsers {
		return &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_NODE}, nil
	}
	var supported bool
	var err error
	if m != nil && m.runtime != nil {
		supported, err = m.runtime.HandlerSupportsUserNamespaces(ctx, handler)
	}
	if err != nil || !supported {
		return nil, refusal(handler, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	first, found, err := m.readRecorded(pod.UID)
	if err != nil {
		return nil, fmt.Errorf("user namespace: %w", err)
	}
	if !found {
		if first, err = m.create(ctx, pod.UID); err != nil {
			return nil, fmt.Errorf("create user namespace: %w", err)
		}
	}
	id := []*runtimeapi.IDMapping{{HostId: first, ContainerId: 0, Length: m.idsPerPod}}
	gid := []*runtimeapi.IDMapping{{HostId: first, ContainerId: 0, Length: m.idsPerPod}}
	return &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: id, Gids: gid}, nil
}

// refusal is upstream's error for a pod asking for a user namespace the runtime (or its
// RuntimeClass handler) cannot give (userns_manager.go GetOrCreateUserNamespaceMappings).
func refusal(handler string, err error) error {
	msg := "can't set `spec.hostUsers: false`, runtime does not support user namespaces"
	if handler != "" {
		msg = fmt.Sprintf("can't set `spec.hostUsers: false`, RuntimeClass handler %q does not support user namespaces", handler)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", msg, err)
	}
	return errors.New(msg)
}

// Release frees the pod's block and removes its file (the pod is gone).
func (m *Manager) Release(ctx context.Context, uid types.UID) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.release(ctx, uid)
}

func (m *Manager) release(ctx context.Context, uid types.UID) {
	first, ok := m.usedBy[uid]
	if !ok {
		return
	}
	klog.FromContext(ctx).V(5).Info("Releasing pod user namespace allocation", "podUID", uid)
	delete(m.usedBy, uid)
	delete(m.slots, int(first/m.idsPerPod)-m.off)
	_ = os.Remove(m.file(uid))
}

// create allocates a free block for the pod and records it in the pod's file.
func (m *Manager) create(ctx context.Context, uid types.UID) (uint32, error) {
	if len(m.slots) >= m.n {
		return 0, fmt.Errorf("could not find an empty slot to allocate a user namespace")
	}
	start := m.rand(m.n)
	slot := -1
	for i := 0; i < m.n; i++ {
		if _, used := m.slots[(start+i)%m.n]; !used {
			slot = (start + i) % m.n
			break
		}
	}
	first := uint32(slot+m.off) * m.idsPerPod
	m.slots[slot], m.usedBy[uid] = uid, first
	klog.FromContext(ctx).V(5).Info("New pod user namespace allocation", "podUID", uid)
	if err := writeFile(m.podDir(uid), mappingsFor(first, m.idsPerPod)); err != nil {
		m.release(ctx, uid)
		return 0, err
	}
	return first, nil
}

// readRecorded reads the pod's file, if any, and records its block (again).
func (m *Manager) readRecorded(uid types.UID) (first uint32, found bool, err error) {
	data, err := os.ReadFile(m.file(uid))
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(data) == 0) {
		return 0, false, nil // the pod has no user namespace of its own
	}
	if err != nil {
		return 0, false, err
	}
	first, length, err := parse(data)
	if err != nil {
		return 0, false, err
	}
	return first, true, m.record(uid, first, length)
}

// record marks the block [first, first+length) as the pod's, checking it is one of ours
// and not another pod's (upstream's record).
func (m *Manager) record(uid types.UID, first, length uint32) error {
	if length != m.idsPerPod {
		return fmt.Errorf("wrong user namespace length %v", length)
	}
	if first%m.idsPerPod != 0 {
		return fmt.Errorf("wrong user namespace offset specified %v", first)
	}
	prev, found := m.usedBy[uid]
	if found && prev != first {
		return fmt.Errorf("different user namespace range already used by pod %q", uid)
	}
	slot := int(first/m.idsPerPod) - m.off
	if slot < 0 || slot >= m.n {
		return fmt.Errorf("id %v is out of range", first)
	}
	if found {
		return nil
	}
	if _, taken := m.slots[slot]; taken {
		return fmt.Errorf("range picked for pod %q already taken", uid)
	}
	m.slots[slot], m.usedBy[uid] = uid, first
	return nil
}
