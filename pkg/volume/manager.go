// Package volume prepares a pod's volumes on the host before its containers start, keeps
// content volumes (configMap, secret, downwardAPI, projected) fresh while the pod runs, and
// tears them down when the pod is gone. Files live under
// <root-dir>/pods/<uid>/volumes/<plugin>/<name>, as upstream lays them out.
package volume

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/minikubelet/minikubelet/pkg/volume/csi"
)

// Config is what the manager needs; New rejects missing fields.
type Config struct {
	// Client reads configMaps and secrets and requests tokens; nil on a standalone node,
	// whose pods can then use emptyDir, hostPath and downwardAPI volumes only.
	Client  kubernetes.Interface
	RootDir string
	// Allocatable is the node's, for resourceFieldRef of containers without limits.
	Allocatable v1.ResourceList
	// RefreshPeriod is how often content volumes are re-read from the API (default 15s;
	// upstream's is about a minute).
	RefreshPeriod time.Duration
	Clock         clock.WithTicker
	// Node is this node, whose labels a persistent volume's node affinity must match;
	// nil matches only PVs without affinity.
	Node func() (*v1.Node, error)
	// Event records an event on an object (nil: none).
	Event func(obj runtime.Object, eventType, reason, message string)
	// StatsPeriod is how long a persistent volume's measured usage is reused (default 1m,
	// upstream's volumeStatsAggPeriod).
	StatsPeriod time.Duration
	// CSI publishes CSI volumes through the registered drivers; nil: CSI volumes are
	// refused.
	CSI *csi.Volumes
	// TrustBundles and PodCertificates answer the projected sources of those names; nil:
	// such a source fails, as on a standalone node.
	TrustBundles    TrustBundles
	PodCertificates PodCertificates
}

// Mount is a volume ready on the host.
type Mount struct {
	HostPath string
	// ReadOnly: content volumes are always mounted read-only, as upstream.
	ReadOnly bool
	// Image: an image volume, which the runtime mounts from the image itself (no
	// HostPath); its pull is the pod worker's.
	Image bool
	// Device: a raw block volume; HostPath is the pod's symlink to the device, which the
	// runtime gives the containers that list it in volumeDevices.
	Device bool
	// stats is how a persistent volume's usage is measured.
	stats statsSource
	// expand is set for a claim's CSI volume that can grow online.
	expand *expandable
}

// Manager owns the pods' volume folders.
type Manager struct {
	cfg    Config
	tokens *tokenCache

	mu   sync.Mutex
	pods map[types.UID]*podVolumes
	// retry are pods whose tear-down failed.
	retry map[types.UID]bool

	statsMu    sync.Mutex
	statsCache map[string]measured // by "<pod uid>/<volume>"
}

type podVolumes struct {
	// work serialises set-up, refresh and tear-down of one pod's volumes.
	work   sync.Mutex
	gone   bool
	pod    *v1.Pod // newest spec seen, for downward API refreshes
	ips    []string
	mounts map[string]Mount
	ready  bool
}

// New checks cfg and returns a manager; Run keeps volumes fresh.
func New(cfg Config) (*Manager, error) {
	if cfg.RootDir == "" {
		return nil, errors.New("volume: RootDir is required")
	}
	if cfg.RefreshPeriod == 0 {
		cfg.RefreshPeriod = 15 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.StatsPeriod == 0 {
		cfg.StatsPeriod = time.Minute
	}
	return &Manager{cfg: cfg, tokens: newTokenCache(cfg.Client, cfg.Clock), pods: map[types.UID]*podVolumes{}, retry: map[types.UID]bool{},
		statsCache: map[string]measured{}}, nil
}

// PodDir is the pod's folder under the root dir.
func (m *Manager) PodDir(uid types.UID) string {
	return filepath.Join(m.cfg.RootDir, "pods", string(uid))
}

// podVolumesDir holds the pod's volumes, one folder per plugin.
func (m *Manager) podVolumesDir(uid types.UID) string {
	return filepath.Join(m.PodDir(uid), "volumes")
}

// Exist reports whether the pod has volumes on the node: set up and not torn down, or a
// folder of them left on disk (upstream's podVolumesExist).
func (m *Manager) Exist(uid types.UID) bool {
	m.mu.Lock()
	_, ok := m.pods[uid]
	m.mu.Unlock()
	if ok {
		return true
	}
	_, err := os.Lstat(m.podVolumesDir(uid))
	return err == nil
}

// SetUp makes every volume of pod ready and returns them by name. The first call does
// the work; later calls return the same mounts (and remember the newest pod spec for
// refreshes) until TearDown. An error names the first volume that failed; volumes set up
// before it are kept, and the next call retries the rest.
func (m *Manager) SetUp(ctx context.Context, pod *v1.Pod, podIPs []string) (map[string]Mount, error) {
	m.mu.Lock()
	pv := m.pods[pod.UID]
	if pv == nil {
		pv = &podVolumes{mounts: map[string]Mount{}}
		m.pods[pod.UID] = pv
	}
	pv.pod, pv.ips = pod, podIPs
	if pv.ready {
		out := copyMounts(pv.mounts)
		m.mu.Unlock()
		return out, nil
	}
	m.mu.Unlock()

	pv.work.Lock()
	defer pv.work.Unlock()
	if pv.gone {
		return nil, fmt.Errorf("pod %s is being torn down", pod.UID)
	}
	mounts, err := m.setUpAll(ctx, pod, podIPs)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	pv.mounts, pv.ready = mounts, true
	return copyMounts(mounts), nil
}

// Update makes pod the spec its set-up volumes are refreshed from: a running pod's labels
// and annotations change without any new set-up. When they changed, its content volumes
// are re-rendered at once (upstream remounts a pod's volumes on its update); other changes
// wait for the next refresh. A pod whose volumes are not set up is left alone.
func (m *Manager) Update(ctx context.Context, pod *v1.Pod) {
	m.mu.Lock()
	pv := m.pods[pod.UID]
	if pv == nil || !pv.ready {
		m.mu.Unlock()
		return
	}
	old := pv.pod
	pv.pod = pod
	m.mu.Unlock()
	if old == nil || !maps.Equal(old.Labels, pod.Labels) || !maps.Equal(old.Annotations, pod.Annotations) {
		m.refresh(ctx, pv)
	}
}

// setUpAll prepares every volume. As upstream, claims that cannot be used yet (unbound,
// PV missing) do not keep the other volumes from being set up; they are reported together
// afterwards. A volume that fails to set up is reported at once.
func (m *Manager) setUpAll(ctx context.Context, pod *v1.Pod, podIPs []string) (map[string]Mount, error) {
	mounts := map[string]Mount{}
	var failed, reasons []string
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		if src := claimSource(pod, vol); src != nil {
			if mounted, device := usedAs(pod, vol.Name); !mounted && !device {
				continue // as upstream: a claim no container uses is not waited for
			}
			c, err := m.resolveClaim(ctx, pod, vol, src)
			if err != nil {
				failed, reasons = append(failed, vol.Name), append(reasons, err.Error())
				continue
			}
			mnt, err := m.setUpClaimed(ctx, pod, c)
			if err != nil {
				return nil, err
			}
			mounts[vol.Name] = mnt
			continue
		}
		mnt, err := m.setUpOne(ctx, pod, podIPs, vol)
		var worded *stepError
		if err != nil && !errors.As(err, &worded) && !IsWaiting(err) {
			err = stepFailed("SetUp", vol.Name, err)
		}
		if err != nil {
			return nil, err
		}
		mounts[vol.Name] = mnt
	}
	if len(failed) == 0 {
		return mounts, nil
	}
	var unmounted []string
	for _, vol := range pod.Spec.Volumes {
		if _, ok := mounts[vol.Name]; ok {
			continue
		}
		if mounted, device := usedAs(pod, vol.Name); mounted || device {
			unmounted = append(unmounted, vol.Name)
		}
	}
	return nil, claimsError(unmounted, failed, reasons)
}

func copyMounts(in map[string]Mount) map[string]Mount {
	out := make(map[string]Mount, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

// TearDown unmounts and removes every volume of the pod (also of pods known only from
// folders left by an earlier run): CSI volumes through their drivers first. Host paths are
// never touched. A tear-down that fails is retried by Run until it succeeds.
func (m *Manager) TearDown(ctx context.Context, uid types.UID) error {
	m.mu.Lock()
	pv := m.pods[uid]
	delete(m.pods, uid)
	m.mu.Unlock()
	if pv != nil {
		pv.work.Lock()
		defer pv.work.Unlock()
		pv.gone = true
	}
	m.tokens.forget(uid)
	if m.cfg.PodCertificates != nil {
		m.cfg.PodCertificates.Forget(uid)
	}
	m.forgetStats(uid)
	err := m.tearDownDir(ctx, uid)
	m.mu.Lock()
	if err != nil {
		m.retry[uid] = true
	} else {
		delete(m.retry, uid)
	}
	m.mu.Unlock()
	return err
}

func (m *Manager) tearDownDir(ctx context.Context, uid types.UID) error {
	if err := m.unmapAll(ctx, uid); err != nil {
		return err
	}
	dir := m.podVolumesDir(uid)
	if m.cfg.CSI != nil {
		// Unmounting a CSI target under the driver would leave it staged and
		// attached: the driver unpublishes, and an error waits for the next try.
		if err := m.cfg.CSI.UnpublishPod(ctx, dir); err != nil {
			return err
		}
	}
	if err := unmountAll(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// retryTearDowns tries the failed tear-downs again.
func (m *Manager) retryTearDowns(ctx context.Context) {
	m.mu.Lock()
	uids := make([]types.UID, 0, len(m.retry))
	for uid := range m.retry {
		uids = append(uids, uid)
	}
	m.mu.Unlock()
	for _, uid := range uids {
		if err := m.TearDown(ctx, uid); err != nil {
			klog.FromContext(ctx).Info("Tearing down volumes failed again", "podUID", uid, "err", err)
		} else {
			_ = os.RemoveAll(m.PodDir(uid))
		}
	}
}

// Run refreshes content volumes and retries failed tear-downs every RefreshPeriod until
// ctx ends. The two run apart: a tear-down waiting on a hanging driver must not hold back
// the other pods' refreshes.
func (m *Manager) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.every(ctx, m.retryTearDowns)
	}()
	m.every(ctx, m.RefreshAll)
}

// every calls fn every RefreshPeriod until ctx ends.
func (m *Manager) every(ctx context.Context, fn func(context.Context)) {
	t := m.cfg.Clock.NewTicker(m.cfg.RefreshPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			fn(ctx)
		}
	}
}

// RefreshAll re-renders the content volumes of every ready pod; a volume whose content
// did not change is not rewritten.
func (m *Manager) RefreshAll(ctx context.Context) {
	m.mu.Lock()
	pods := make([]*podVolumes, 0, len(m.pods))
	for _, pv := range m.pods {
		pods = append(pods, pv)
	}
	m.mu.Unlock()
	ctx = withRoundCache(ctx)
	for _, pv := range pods {
		m.refresh(ctx, pv)
	}
}

func (m *Manager) refresh(ctx context.Context, pv *podVolumes) {
	// A pod whose volumes are being set up or torn down (a CSI call may hang up to its
	// 2-minute timeout) is refreshed next round, not waited for: the other pods' volumes
	// must not wait behind it.
	if !pv.work.TryLock() {
		return
	}
	defer pv.work.Unlock()
	m.mu.Lock()
	pod, ips, ready := pv.pod, pv.ips, pv.ready
	m.mu.Unlock()
	if pv.gone || !ready {
		return
	}
	if m.cfg.Client != nil && m.cfg.CSI != nil {
		for _, mnt := range pv.mounts {
			if mnt.expand != nil {
				m.expandIfAsked(ctx, pod, mnt.expand)
			}
		}
	}
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		if !isContent(vol) {
			continue
		}
		if _, err := m.setUpOne(ctx, pod, ips, vol); err != nil {
			klog.FromContext(ctx).Info("Refreshing volume failed", "pod", klog.KObj(pod), "volume", vol.Name, "err", err)
		}
	}
}

func isContent(vol *v1.Volume) bool {
	return vol.ConfigMap != nil || vol.Secret != nil || vol.DownwardAPI != nil || vol.Projected != nil
}

func (m *Manager) event(obj runtime.Object, eventType, reason, msg string) {
	if m.cfg.Event != nil {
		m.cfg.Event(obj, eventType, reason, msg)
	}
}
