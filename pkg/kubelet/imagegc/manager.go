package imagegc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	v1 "k8s.io/api/core/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/kubelet/metrics"
)

// Upstream's event reasons (pkg/kubelet/events).
const (
	ReasonImageGCFailed       = "ImageGCFailed"
	ReasonFreeDiskSpaceFailed = "FreeDiskSpaceFailed"
	ReasonInvalidDiskCapacity = "InvalidDiskCapacity"
)

// ImageFs gives the image filesystem's capacity and availability (*stats.Provider has it).
type ImageFs interface {
	ImageFsStats(ctx context.Context) (*statsapi.FsStats, error)
}

// Config is what a Manager needs; New rejects missing fields and a bad policy.
type Config struct {
	Runtime  *cri.Client
	ImageFs  ImageFs
	Recorder record.EventRecorder
	// Node is the object the events are about.
	Node   *v1.ObjectReference
	Policy Policy
	// Period is how often Run collects (upstream's ImageGCPeriod, 5m).
	Period time.Duration
}

// Manager tracks when images were first seen and last used, and collects.
type Manager struct {
	cfg   Config
	began time.Time // when collection started (the maximum age counts from it)

	mu      sync.Mutex
	records map[string]*seen // by image ID
}

type seen struct {
	firstDetected, lastUsed time.Time
}

// New checks cfg.
func New(cfg Config) (*Manager, error) {
	if cfg.Runtime == nil || cfg.ImageFs == nil || cfg.Recorder == nil || cfg.Node == nil || cfg.Period <= 0 {
		return nil, errors.New("imagegc: Runtime, ImageFs, Recorder, Node and a positive Period are required")
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	return &Manager{cfg: cfg, records: map[string]*seen{}}, nil
}

// Run collects every Period, the first time at once, until ctx ends; it does nothing
// when the policy disables collection. As upstream, a failure is an ImageGCFailed event
// only when the previous round failed too (the first may precede the stats' first
// measurement).
func (m *Manager) Run(ctx context.Context) {
	logger := klog.FromContext(ctx)
	if m.cfg.Policy.Disabled() {
		logger.V(2).Info("ImageGCHighThresholdPercent is set 100 and ImageMaximumGCAge is 0, Disable image GC")
		return
	}
	m.began = time.Now()
	prevFailed := false
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		err := m.GarbageCollect(ctx, time.Now())
		switch {
		case err != nil && ctx.Err() != nil:
		case err != nil && prevFailed:
			logger.Error(err, "Image garbage collection failed multiple times in a row")
			m.cfg.Recorder.Event(m.cfg.Node, v1.EventTypeWarning, ReasonImageGCFailed, err.Error())
		case err != nil:
			logger.Error(err, "Image garbage collection failed once. Stats initialization may not have completed yet")
		case prevFailed:
			logger.Info("Image garbage collection succeeded")
		default:
			logger.V(4).Info("Image garbage collection succeeded")
		}
		prevFailed = err != nil
	}, m.cfg.Period)
}

// GarbageCollect runs one collection at now: images unused beyond the maximum age, then,
// with the usage re-read, for space.
func (m *Manager) GarbageCollect(ctx context.Context, now time.Time) error {
	imgs, err := m.detect(ctx, now)
	if err != nil {
		return err
	}
	var errs []error
	removed := sets.New[string]()
	for _, img := range ByAge(m.cfg.Policy, imgs, m.began, now) {
		if err := m.remove(ctx, img, "age"); err != nil {
			errs = append(errs, err)
			continue
		}
		removed.Insert(img.ID)
	}
	if len(errs) > 0 {
		return fmt.Errorf("wanted to free images older than %v, encountered errors in image deletion: %w", m.cfg.Policy.MaxAge, utilerrors.NewAggregate(errs))
	}
	left := imgs[:0]
	for _, img := range imgs {
		if !removed.Has(img.ID) {
			left = append(left, img)
		}
	}
	return m.freeSpace(ctx, left, now)
}

// freeSpace collects for the image filesystem's usage; it fails with a
// FreeDiskSpaceFailed event when the eligible images were not enough.
func (m *Manager) freeSpace(ctx context.Context, imgs []Image, now time.Time) error {
	fs, err := m.cfg.ImageFs.ImageFsStats(ctx)
	if err != nil {
		return err
	}
	var capacity, available int64
	if fs.CapacityBytes != nil {
		capacity = int64(*fs.CapacityBytes)
	}
	if fs.AvailableBytes != nil {
		available = int64(*fs.AvailableBytes)
	}
	s, err := ForSpace(m.cfg.Policy, imgs, capacity, available, now)
	if errors.Is(err, ErrNoCapacity) {
		m.cfg.Recorder.Event(m.cfg.Node, v1.EventTypeWarning, ReasonInvalidDiskCapacity, err.Error())
		return err
	}
	if s.ToFree == 0 {
		return nil
	}
	logger := klog.FromContext(ctx)
	logger.Info("Disk usage on image filesystem is over the high threshold, trying to free bytes down to the low threshold",
		"usage", s.UsagePercent, "highThreshold", m.cfg.Policy.HighThresholdPercent, "amountToFree", s.ToFree, "lowThreshold", m.cfg.Policy.LowThresholdPercent)
	var freed int64
	var errs []error
	for _, img := range append(s.Remove, s.Spare...) {
		if freed >= s.ToFree {
			break
		}
		if err := m.remove(ctx, img, "space"); err != nil {
			errs = append(errs, err) // as upstream: go on with the next image
			continue
		}
		freed += img.Size
	}
	if len(errs) > 0 {
		return fmt.Errorf("wanted to free %d bytes, but freed %d bytes space with errors in image deletion: %w", s.ToFree, freed, utilerrors.NewAggregate(errs))
	}
	if freed < s.ToFree {
		msg := FailedMessage(s.UsagePercent, capacity, freed)
		m.cfg.Recorder.Event(m.cfg.Node, v1.EventTypeWarning, ReasonFreeDiskSpaceFailed, msg)
		return errors.New(msg)
	}
	return nil
}

// DeleteUnusedImages removes every image Unused allows, for the eviction manager under
// disk pressure; as upstream it goes on past a failed removal and reports them all.
func (m *Manager) DeleteUnusedImages(ctx context.Context) error {
	now := time.Now()
	imgs, err := m.detect(ctx, now)
	if err != nil {
		return err
	}
	var errs []error
	for _, img := range Unused(m.cfg.Policy, imgs, now) {
		if err := m.remove(ctx, img, "space"); err != nil {
			errs = append(errs, err)
		}
	}
	return utilerrors.NewAggregate(errs)
}

func (m *Manager) remove(ctx context.Context, img Image, reason string) error {
	klog.FromContext(ctx).Info("Removing image to free bytes", "imageID", img.ID, "size", img.Size, "reason", reason)
	if err := m.cfg.Runtime.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: img.ID}); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.records, img.ID)
	m.mu.Unlock()
	metrics.ImageCollected(reason)
	return nil
}

// detect lists the runtime's images and containers: images seen for the first time are
// recorded as detected now, images in use as used now; records of images gone are
// dropped.
func (m *Manager) detect(ctx context.Context, now time.Time) ([]Image, error) {
	images, err := m.cfg.Runtime.ListImages(ctx)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	inUse, err := m.imagesInUse(ctx)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Image, 0, len(images))
	present := sets.New[string]()
	for _, img := range images {
		id := img.GetId()
		present.Insert(id)
		r := m.records[id]
		if r == nil {
			r = &seen{firstDetected: now}
			m.records[id] = r
		}
		used := used(img, inUse)
		if used {
			r.lastUsed = now
		}
		out = append(out, Image{ID: id, Size: int64(img.GetSize()), Pinned: img.GetPinned(), InUse: used,
			FirstDetected: r.firstDetected, LastUsed: r.lastUsed})
	}
	for id := range m.records {
		if !present.Has(id) {
			delete(m.records, id)
		}
	}
	return out, nil
}

// imagesInUse are the image IDs and references of every container in the runtime,
// whatever its state (as upstream's GetPods(all)), and of the images they mount as image
// volumes (read from each container's status, as upstream's handleImageVolumes).
func (m *Manager) imagesInUse(ctx context.Context) (sets.Set[string], error) {
	cts, err := m.cfg.Runtime.ListContainers(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	inUse := sets.New[string]()
	for _, c := range cts {
		inUse.Insert(c.GetImageRef(), c.GetImage().GetImage(), c.GetImageId())
		st, err := m.cfg.Runtime.ContainerStatus(ctx, c.GetId())
		if errdefs.IsNotFound(err) {
			continue // removed since the list
		}
		if err != nil {
			return nil, fmt.Errorf("get container status: %w", err)
		}
		for _, mnt := range st.GetMounts() {
			if img := mnt.GetImage(); img != nil {
				inUse.Insert(img.GetImage())
			}
		}
	}
	inUse.Delete("")
	return inUse, nil
}

// used: the image's ID, a tag or a digest of it is in use.
func used(img *runtimeapi.Image, inUse sets.Set[string]) bool {
	if inUse.Has(img.GetId()) {
		return true
	}
	for _, ref := range append(img.GetRepoTags(), img.GetRepoDigests()...) {
		if inUse.Has(ref) {
			return true
		}
	}
	return false
}
