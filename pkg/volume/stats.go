package volume

import (
	"context"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// statsSource is how a persistent volume's usage is measured, as upstream's plugins
// measure it: statfs of a local volume's folder, the driver's NodeGetVolumeStats for a CSI
// volume; hostPath volumes have none.
type statsSource struct {
	statfs bool
	// driver and handle name a CSI volume.
	driver, handle string
}

// PersistentStats measures a pod's persistent (claim or CSI) volume, at most once per
// StatsPeriod (upstream's volumeStatsAggPeriod); ok is false for volumes that are not set
// up or whose plugin reports no usage.
func (m *Manager) PersistentStats(ctx context.Context, uid types.UID, name string) (*statsapi.FsStats, bool) {
	key := string(uid) + "/" + name
	m.statsMu.Lock()
	c, hit := m.statsCache[key]
	m.statsMu.Unlock()
	if hit && time.Since(c.at) < m.cfg.StatsPeriod {
		return c.fs, c.fs != nil
	}
	fs, ok := m.measure(ctx, uid, name)
	if !ok {
		fs = nil
	}
	m.statsMu.Lock()
	m.statsCache[key] = measured{time.Now(), fs}
	m.statsMu.Unlock()
	return fs, ok
}

type measured struct {
	at time.Time
	fs *statsapi.FsStats
}

// forgetStats drops a torn-down pod's cached measurements.
func (m *Manager) forgetStats(uid types.UID) {
	m.statsMu.Lock()
	defer m.statsMu.Unlock()
	for k := range m.statsCache {
		if strings.HasPrefix(k, string(uid)+"/") {
			delete(m.statsCache, k)
		}
	}
}

func (m *Manager) measure(ctx context.Context, uid types.UID, name string) (*statsapi.FsStats, bool) {
	m.mu.Lock()
	pv := m.pods[uid]
	var mnt Mount
	ok := pv != nil && pv.ready
	if ok {
		mnt, ok = pv.mounts[name]
	}
	m.mu.Unlock()
	if !ok {
		return nil, false
	}
	now := metav1.NewTime(time.Now())
	switch src := mnt.stats; {
	case src.statfs:
		var st unix.Statfs_t
		if unix.Statfs(mnt.HostPath, &st) != nil {
			return nil, false
		}
		bs := uint64(st.Bsize)
		capacity, avail, used := st.Blocks*bs, st.Bavail*bs, (st.Blocks-st.Bfree)*bs
		inodes, free, iused := st.Files, st.Ffree, st.Files-st.Ffree
		return &statsapi.FsStats{Time: now, CapacityBytes: &capacity, AvailableBytes: &avail, UsedBytes: &used,
			Inodes: &inodes, InodesFree: &free, InodesUsed: &iused}, true
	case src.driver != "" && m.cfg.CSI != nil:
		u, ok, err := m.cfg.CSI.VolumeStats(ctx, src.driver, src.handle, mnt.HostPath)
		if err != nil || !ok {
			return nil, false
		}
		n := func(v int64) *uint64 { x := uint64(max(v, 0)); return &x }
		return &statsapi.FsStats{Time: now, CapacityBytes: n(u.Bytes.Total), AvailableBytes: n(u.Bytes.Available), UsedBytes: n(u.Bytes.Used),
			Inodes: n(u.Inodes.Total), InodesFree: n(u.Inodes.Available), InodesUsed: n(u.Inodes.Used)}, true
	}
	return nil, false
}
