package volume

import (
	"context"
	"strings"
	"time"

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

// PersistentStats says how to measure a pod's persistent (claim or CSI) volume: a CSI
// volume's usage from its driver (asked at most once per StatsPeriod, upstream's
// volumeStatsAggPeriod), or for a local PV the folder whose filesystem the caller is to
// statfs. ok is false for volumes that are not set up or whose plugin reports no usage.
func (m *Manager) PersistentStats(ctx context.Context, uid types.UID, name string) (fs *statsapi.FsStats, statfsPath string, ok bool) {
	m.mu.Lock()
	pv := m.pods[uid]
	var mnt Mount
	ok = pv != nil && pv.ready
	if ok {
		mnt, ok = pv.mounts[name]
	}
	m.mu.Unlock()
	switch {
	case !ok:
		return nil, "", false
	case mnt.stats.statfs:
		return nil, mnt.HostPath, true
	case mnt.stats.driver != "" && m.cfg.CSI != nil:
		fs = m.driverStats(ctx, string(uid)+"/"+name, mnt)
		return fs, "", fs != nil
	}
	return nil, "", false
}

// driverStats asks a CSI volume's driver for its usage, reusing an answer (or a refusal)
// younger than StatsPeriod.
func (m *Manager) driverStats(ctx context.Context, key string, mnt Mount) *statsapi.FsStats {
	m.statsMu.Lock()
	c, hit := m.statsCache[key]
	m.statsMu.Unlock()
	if hit && time.Since(c.at) < m.cfg.StatsPeriod {
		return c.fs
	}
	var fs *statsapi.FsStats
	u, ok, err := m.cfg.CSI.VolumeStats(ctx, mnt.stats.driver, mnt.stats.handle, mnt.HostPath)
	if err == nil && ok {
		n := func(v int64) *uint64 { x := uint64(max(v, 0)); return &x }
		fs = &statsapi.FsStats{Time: metav1.NewTime(time.Now()), CapacityBytes: n(u.Bytes.Total), AvailableBytes: n(u.Bytes.Available),
			UsedBytes: n(u.Bytes.Used), Inodes: n(u.Inodes.Total), InodesFree: n(u.Inodes.Available), InodesUsed: n(u.Inodes.Used)}
	}
	m.statsMu.Lock()
	m.statsCache[key] = measured{time.Now(), fs}
	m.statsMu.Unlock()
	return fs
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
