// Package imagegc removes unused images as the upstream kubelet's image garbage
// collection does (pkg/kubelet/images/image_gc_manager.go): when the image filesystem is
// used above the high threshold, unused images are removed, least recently used first,
// until usage is down to the low threshold; images unused for longer than the maximum
// age are removed whatever the usage. The decisions are the pure functions of this file;
// the Manager observes the runtime, calls them and acts.
package imagegc

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Policy is upstream's ImageGCPolicy, from the kubelet configuration.
type Policy struct {
	// HighThresholdPercent: usage at or above it starts a collection.
	HighThresholdPercent int
	// LowThresholdPercent: the usage a collection frees down to.
	LowThresholdPercent int
	// MinAge: an image detected more recently is kept (it may be about to be used).
	MinAge time.Duration
	// MaxAge: an image unused for longer is removed whatever the usage (0: never).
	MaxAge time.Duration
}

// Validate checks the policy as upstream's NewImageGCManager does.
func (p Policy) Validate() error {
	if p.HighThresholdPercent < 0 || p.HighThresholdPercent > 100 {
		return fmt.Errorf("invalid HighThresholdPercent %d, must be in range [0-100]", p.HighThresholdPercent)
	}
	if p.LowThresholdPercent < 0 || p.LowThresholdPercent > 100 {
		return fmt.Errorf("invalid LowThresholdPercent %d, must be in range [0-100]", p.LowThresholdPercent)
	}
	if p.LowThresholdPercent > p.HighThresholdPercent {
		return fmt.Errorf("LowThresholdPercent %d can not be higher than HighThresholdPercent %d", p.LowThresholdPercent, p.HighThresholdPercent)
	}
	return nil
}

// Disabled is upstream's switch-off: a high threshold of 100 and no maximum age.
func (p Policy) Disabled() bool { return p.HighThresholdPercent == 100 && p.MaxAge == 0 }

// Image is what collection knows of one image.
type Image struct {
	ID   string
	Size int64
	// Pinned: the runtime asks for it to be kept (containerd's sandbox image).
	Pinned bool
	// InUse: a container in the runtime (of any state) runs it or mounts it as an image
	// volume.
	InUse bool
	// FirstDetected is when collection first saw the image; LastUsed when it last saw it
	// in use (zero: never).
	FirstDetected, LastUsed time.Time
}

// candidates are the images collection may remove (neither in use nor pinned), least
// recently used first, ties broken by the earliest detected (upstream's order).
func candidates(imgs []Image) []Image {
	var out []Image
	for _, img := range imgs {
		if !img.InUse && !img.Pinned {
			out = append(out, img)
		}
	}
	slices.SortStableFunc(out, func(a, b Image) int {
		if !a.LastUsed.Equal(b.LastUsed) {
			return a.LastUsed.Compare(b.LastUsed)
		}
		return a.FirstDetected.Compare(b.FirstDetected)
	})
	return out
}

// ByAge returns the images to remove for age: unused and unpinned, and unused for longer
// than MaxAge. As upstream, none until the kubelet has collected for MaxAge (began), so
// a restart does not remove images it has not yet seen in use; an image never seen in
// use counts as unused since forever.
func ByAge(p Policy, imgs []Image, began, now time.Time) []Image {
	if p.MaxAge == 0 || now.Sub(began) <= p.MaxAge {
		return nil
	}
	var out []Image
	for _, img := range candidates(imgs) {
		if now.Sub(img.LastUsed) > p.MaxAge {
			out = append(out, img)
		}
	}
	return out
}

// Unused are the images to remove when the eviction manager reclaims disk (upstream's
// DeleteUnusedImages): every unused, unpinned image detected at least MinAge ago, least
// recently used first, whatever the thresholds.
func Unused(p Policy, imgs []Image, now time.Time) []Image {
	var out []Image
	for _, img := range candidates(imgs) {
		if now.Sub(img.FirstDetected) >= p.MinAge {
			out = append(out, img)
		}
	}
	return out
}

// Space is the decision for disk usage.
type Space struct {
	// UsagePercent is the image filesystem's usage, as upstream rounds it.
	UsagePercent int
	// ToFree is how many bytes to free to reach the low threshold (0: usage is below the
	// high threshold, nothing to do).
	ToFree int64
	// Remove are the images to remove, least recently used first: enough to free
	// ToFree, or every eligible one when they are not enough. Spare are the eligible
	// images after them, in order, to try when a removal fails.
	Remove, Spare []Image
	// Freeable is what removing Remove frees; below ToFree, collection fails
	// (FreeDiskSpaceFailed).
	Freeable int64
}

// ErrNoCapacity is a filesystem reporting no capacity (upstream's InvalidDiskCapacity).
var ErrNoCapacity = errors.New("invalid capacity 0 on image filesystem")

// ForSpace decides what to remove for the image filesystem's usage (capacity and
// available bytes): nothing below the high threshold; else unused, unpinned images
// detected at least MinAge ago, least recently used first, until ToFree.
func ForSpace(p Policy, imgs []Image, capacity, available int64, now time.Time) (Space, error) {
	if capacity <= 0 {
		return Space{}, ErrNoCapacity
	}
	available = min(available, capacity)
	s := Space{UsagePercent: 100 - int(available*100/capacity)}
	if s.UsagePercent < p.HighThresholdPercent {
		return s, nil
	}
	s.ToFree = capacity*int64(100-p.LowThresholdPercent)/100 - available
	for _, img := range candidates(imgs) {
		if now.Sub(img.FirstDetected) < p.MinAge {
			continue // maybe just pulled, for a container about to start
		}
		if s.Freeable >= s.ToFree {
			s.Spare = append(s.Spare, img)
			continue
		}
		s.Remove = append(s.Remove, img)
		s.Freeable += img.Size
	}
	return s, nil
}

// FailedMessage is upstream's FreeDiskSpaceFailed message: usage percent, capacity and
// bytes actually freed.
func FailedMessage(usagePercent int, capacity, freed int64) string {
	return fmt.Sprintf("Insufficient free disk space on the node's image filesystem (%d%% of %s used). "+
		"Failed to free sufficient space by deleting unused images (freed %d bytes). "+
		"Investigate disk usage, as it could be used by active images, logs, volumes, or other data.",
		usagePercent, humanSize(capacity), freed)
}

// humanSize writes a size as upstream's message does: bytes below 1 KiB, else one
// decimal in the largest binary unit up to TiB.
func humanSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n)/1024, "KiB"
	for _, next := range []string{"MiB", "GiB", "TiB"} {
		if v < 1024 {
			break
		}
		v, unit = v/1024, next
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}
