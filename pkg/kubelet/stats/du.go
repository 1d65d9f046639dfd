package stats

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// duCache holds du-style usage of directories (volumes, log directories) for a period
// (volumeStatsAggPeriod), as upstream computes volume usage once a period: walking a
// big volume on every scrape would cost more than the scrape is worth.
type duCache struct {
	period time.Duration
	mu     sync.Mutex
	byPath map[string]duEntry
}

type duEntry struct {
	fs   statsapi.FsStats
	at   time.Time
	seen bool // used in the current round (kept by sweep)
}

func newDuCache(period time.Duration) *duCache {
	return &duCache{period: period, byPath: map[string]duEntry{}}
}

// get returns the usage of path (bytes in blocks and inodes under it, on its device) and
// the capacity of its filesystem, measured at most a period ago; false if path is gone.
func (c *duCache) get(path string, now time.Time) (statsapi.FsStats, bool) {
	return c.getWith(path, now, measureDir)
}

// getWith is get with another measure of path (statfs of a persistent volume's folder).
func (c *duCache) getWith(path string, now time.Time, measure func(string, time.Time) (statsapi.FsStats, error)) (statsapi.FsStats, bool) {
	c.mu.Lock()
	e, ok := c.byPath[path]
	if ok {
		e.seen = true
		c.byPath[path] = e
	}
	c.mu.Unlock()
	if ok && now.Sub(e.at) < c.period {
		return e.fs, true
	}
	fsStats, err := measure(path, now)
	if err != nil {
		return statsapi.FsStats{}, false
	}
	c.mu.Lock()
	c.byPath[path] = duEntry{fs: fsStats, at: now, seen: true}
	c.mu.Unlock()
	return fsStats, true
}

// sweep forgets the paths not asked for since the last sweep (pods gone).
func (c *duCache) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, e := range c.byPath {
		if !e.seen {
			delete(c.byPath, p)
			continue
		}
		e.seen = false
		c.byPath[p] = e
	}
}

// measureDir is upstream's MetricsDu: blocks and inodes under path (hard links once,
// not crossing into other filesystems) and statfs of its filesystem.
func measureDir(path string, now time.Time) (statsapi.FsStats, error) {
	var top syscall.Stat_t
	if err := syscall.Stat(path, &top); err != nil {
		return statsapi.FsStats{}, err
	}
	var bytes, inodes uint64
	linked := map[uint64]bool{}
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while walking
		}
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		s, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if s.Dev != top.Dev {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if s.Nlink > 1 && !d.IsDir() {
			if linked[s.Ino] {
				return nil
			}
			linked[s.Ino] = true
		}
		bytes += uint64(s.Blocks) * 512
		inodes++
		return nil
	})
	if err != nil {
		return statsapi.FsStats{}, err
	}
	fi, err := statfs(path)
	if err != nil {
		return statsapi.FsStats{}, err
	}
	return statsapi.FsStats{Time: metav1.NewTime(now), UsedBytes: &bytes, InodesUsed: &inodes,
		CapacityBytes: &fi.capacity, AvailableBytes: &fi.available, Inodes: &fi.inodes, InodesFree: &fi.inodesFree}, nil
}

// filesUsage sums the files (not directories) directly in dir, as upstream measures a
// container's or pod's log directory (afresh each time: logs grow); false if dir cannot
// be read.
func filesUsage(dir string, now time.Time) (used, inodes uint64, ok bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, false
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		if f, err := measureDir(filepath.Join(dir, e.Name()), now); err == nil {
			used += *f.UsedBytes
			inodes += *f.InodesUsed
		}
	}
	return used, inodes, true
}
