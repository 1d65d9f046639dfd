package imagegc

import (
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func ids(imgs []Image) []string {
	var out []string
	for _, img := range imgs {
		out = append(out, img.ID)
	}
	return out
}

// img is an unused, unpinned image of size MiB, detected detectedAgo and last used
// usedAgo before t0 (0: never used).
func img(id string, mib int64, detectedAgo, usedAgo time.Duration) Image {
	i := Image{ID: id, Size: mib << 20, FirstDetected: t0.Add(-detectedAgo)}
	if usedAgo > 0 {
		i.LastUsed = t0.Add(-usedAgo)
	}
	return i
}

func TestForSpace(t *testing.T) {
	policy := Policy{HighThresholdPercent: 85, LowThresholdPercent: 80, MinAge: 2 * time.Minute}
	const gib = int64(1) << 30
	pinned, inUse := img("pinned", 500, time.Hour, 0), img("inuse", 500, time.Hour, 0)
	pinned.Pinned, inUse.InUse = true, true
	for _, tc := range []struct {
		name                string
		policy              Policy
		imgs                []Image
		capacity, available int64
		usage               int
		toFree, freeable    int64
		remove, spare       []string
	}{
		{name: "below the high threshold: nothing", capacity: 10 * gib, available: 2 * gib, usage: 80,
			imgs: []Image{img("a", 100, time.Hour, 0)}},
		{name: "at the high threshold: down to the low one, least recently used first", capacity: 10 * gib, available: 1536 << 20, usage: 85,
			// 20% of 10Gi is 2048Mi available wanted: 512Mi to free.
			imgs: []Image{img("recent", 300, time.Hour, time.Minute), img("old", 300, time.Hour, 30*time.Minute),
				img("never", 300, time.Hour, 0), img("older", 300, time.Hour, time.Hour)},
			toFree: 512 << 20, freeable: 600 << 20, remove: []string{"never", "older"}, spare: []string{"old", "recent"}},
		{name: "same last use: earliest detected first", capacity: 10 * gib, available: 1536 << 20, usage: 85,
			imgs:   []Image{img("b", 600, time.Hour, 0), img("a", 600, 2*time.Hour, 0)},
			toFree: 512 << 20, freeable: 600 << 20, remove: []string{"a"}, spare: []string{"b"}},
		{name: "pinned, in use and younger than the minimum age are kept", capacity: 10 * gib, available: 1536 << 20, usage: 85,
			imgs:   []Image{pinned, inUse, img("young", 600, time.Minute, 0), img("ok", 100, time.Hour, 0)},
			toFree: 512 << 20, freeable: 100 << 20, remove: []string{"ok"}},
		{name: "nothing eligible: short by all of it", capacity: 10 * gib, available: 1536 << 20, usage: 85,
			imgs: []Image{pinned, inUse}, toFree: 512 << 20},
		{name: "no images at all", capacity: 100, available: 0, usage: 100, toFree: 20},
		{name: "available above capacity is capped", capacity: 100, available: 150, usage: 0},
		{name: "high 1 low 0: everything eligible goes", policy: Policy{HighThresholdPercent: 1, LowThresholdPercent: 0, MinAge: time.Second},
			capacity: 1000, available: 900, usage: 10, toFree: 100, freeable: 30,
			imgs:   []Image{{ID: "x", Size: 10, FirstDetected: t0.Add(-time.Minute)}, {ID: "y", Size: 20, FirstDetected: t0.Add(-2 * time.Minute)}},
			remove: []string{"y", "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := policy
			if tc.policy != (Policy{}) {
				p = tc.policy
			}
			s, err := ForSpace(p, tc.imgs, tc.capacity, tc.available, t0)
			if err != nil {
				t.Fatal(err)
			}
			if s.UsagePercent != tc.usage || s.ToFree != tc.toFree || s.Freeable != tc.freeable ||
				!slices.Equal(ids(s.Remove), tc.remove) || !slices.Equal(ids(s.Spare), tc.spare) {
				t.Errorf("got usage %d toFree %d freeable %d remove %v spare %v, want %d %d %d %v %v", s.UsagePercent, s.ToFree,
					s.Freeable, ids(s.Remove), ids(s.Spare), tc.usage, tc.toFree, tc.freeable, tc.remove, tc.spare)
			}
		})
	}
	if _, err := ForSpace(policy, nil, 0, 0, t0); err != ErrNoCapacity {
		t.Errorf("capacity 0: %v", err)
	}
}

func TestByAge(t *testing.T) {
	p := Policy{HighThresholdPercent: 85, LowThresholdPercent: 80, MinAge: 2 * time.Minute, MaxAge: time.Hour}
	pinned, inUse := img("pinned", 1, 3*time.Hour, 0), img("inuse", 1, 3*time.Hour, 2*time.Hour)
	pinned.Pinned, inUse.InUse = true, true
	imgs := []Image{img("stale", 1, 3*time.Hour, 2*time.Hour), img("fresh", 1, 3*time.Hour, 30*time.Minute),
		img("never", 1, time.Minute, 0), pinned, inUse, img("edge", 1, 3*time.Hour, time.Hour)}
	for _, tc := range []struct {
		name        string
		policy      Policy
		began       time.Time
		wantRemoved []string
	}{
		{name: "unused longer than the maximum age, never-used included", policy: p, began: t0.Add(-2 * time.Hour),
			wantRemoved: []string{"never", "stale"}},
		{name: "not before collecting for the maximum age", policy: p, began: t0.Add(-time.Hour)},
		{name: "no maximum age: off", policy: Policy{HighThresholdPercent: 85, LowThresholdPercent: 80}, began: t0.Add(-100 * time.Hour)},
	} {
		if got := ids(ByAge(tc.policy, imgs, tc.began, t0)); !slices.Equal(got, tc.wantRemoved) {
			t.Errorf("%s: removed %v, want %v", tc.name, got, tc.wantRemoved)
		}
	}
}

func TestPolicy(t *testing.T) {
	for _, tc := range []struct {
		p        Policy
		err      string
		disabled bool
	}{
		{p: Policy{HighThresholdPercent: 85, LowThresholdPercent: 80}},
		{p: Policy{HighThresholdPercent: 100, LowThresholdPercent: 80}, disabled: true},
		{p: Policy{HighThresholdPercent: 100, LowThresholdPercent: 80, MaxAge: time.Hour}},
		{p: Policy{HighThresholdPercent: 101}, err: "invalid HighThresholdPercent 101, must be in range [0-100]"},
		{p: Policy{HighThresholdPercent: 50, LowThresholdPercent: -1}, err: "invalid LowThresholdPercent -1, must be in range [0-100]"},
		{p: Policy{HighThresholdPercent: 50, LowThresholdPercent: 60}, err: "LowThresholdPercent 60 can not be higher than HighThresholdPercent 50"},
	} {
		err := tc.p.Validate()
		if (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) || tc.p.Disabled() != tc.disabled {
			t.Errorf("%+v: %v disabled %v, want %q %v", tc.p, err, tc.p.Disabled(), tc.err, tc.disabled)
		}
	}
}

func TestFailedMessage(t *testing.T) {
	for _, tc := range []struct {
		capacity int64
		size     string
	}{{512, "512 B"}, {1536, "1.5 KiB"}, {10 << 20, "10.0 MiB"}, {100 << 30, "100.0 GiB"}, {3 << 40, "3.0 TiB"}, {5 << 50, "5120.0 TiB"}} {
		msg := FailedMessage(90, tc.capacity, 42)
		want := "Insufficient free disk space on the node's image filesystem (90% of " + tc.size + " used). Failed to free sufficient space by deleting unused images (freed 42 bytes)."
		if !strings.HasPrefix(msg, want) {
			t.Errorf("%d: %q, want prefix %q", tc.capacity, msg, want)
		}
	}
}
