package cm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/cgroups"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// PodUse is what a pod found in the cgroup tree is to the node, for the orphan sweep.
type PodUse int

const (
	// PodGone: nothing of the pod may run any more; its cgroup is removed, what is left
	// in it killed first.
	PodGone PodUse = iota
	// PodVolumesLeft: the pod is gone but its volumes are still mounted; the cgroup
	// stays (memory-backed volumes stay charged to it) with the least CPU, as upstream.
	PodVolumesLeft
	// PodInUse: the pod may still run (or the node does not yet know all its pods).
	PodInUse
)

// housekeepingPeriod is upstream's: how often the pod cgroups are checked for orphans.
const housekeepingPeriod = 2 * time.Second

// PodCgroups finds the pod cgroups under the QoS cgroups in every hierarchy (upstream's
// GetAllPodsFromCgroups), by pod UID: a pod whose cgroup is left in even one hierarchy is
// found.
func (m *Manager) PodCgroups() (map[types.UID]string, error) {
	roots, err := m.tree.roots()
	if err != nil {
		return nil, err
	}
	found := map[types.UID]string{}
	for _, root := range roots {
		for _, class := range []v1.PodQOSClass{v1.PodQOSGuaranteed, v1.PodQOSBurstable, v1.PodQOSBestEffort} {
			qos := cri.QOSCgroupPath(m.cfg.Driver, m.cfg.Root, class)
			entries, err := os.ReadDir(path.Join(root, qos))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("failed to read the cgroup directory %s : %v", path.Join(root, qos), err)
			}
			for _, e := range entries {
				if uid, ok := podCgroupUID(m.cfg.Driver, e.Name()); ok && e.IsDir() {
					found[uid] = path.Join(qos, e.Name())
				}
			}
		}
	}
	return found, nil
}

// podCgroupUID is the pod UID a pod cgroup's directory is named for: pod<uid> (cgroupfs)
// or <parent>-pod<uid, dashes as underscores>.slice (systemd). Other directories (the
// QoS cgroups under kubepods, anything else) are no pod's.
func podCgroupUID(driver, base string) (types.UID, bool) {
	if driver == cri.SystemdDriver {
		s, ok := strings.CutSuffix(base, ".slice")
		if !ok {
			return "", false
		}
		base = strings.ReplaceAll(s[strings.LastIndex(s, "-")+1:], "_", "-")
	}
	uid, ok := strings.CutPrefix(base, "pod")
	if !ok || uid == "" || strings.ContainsAny(uid, "/.") {
		return "", false
	}
	return types.UID(uid), true
}

// SweepOrphans removes the cgroups of pods that use tells are gone, and gives those whose
// volumes are left the least CPU (upstream's cleanupOrphanedPodCgroups). The cgroups are
// listed before use is asked, so a pod that starts meanwhile is never taken for an orphan.
func (m *Manager) SweepOrphans(ctx context.Context, use func(types.UID) PodUse) {
	found, err := m.PodCgroups()
	if err != nil {
		klog.FromContext(ctx).Error(err, "Listing pod cgroups failed")
		return
	}
	for uid, name := range found {
		switch use(uid) {
		case PodInUse:
		case PodVolumesLeft:
			if err := m.set(name, Config{CPUShares: new(uint64(MinShares))}); err != nil {
				klog.FromContext(ctx).Info("Failed to reduce cpu time for pod pending volume cleanup", "podUID", uid, "err", err)
			}
		case PodGone:
			klog.FromContext(ctx).V(3).Info("Orphaned pod found, removing pod cgroups", "podUID", uid)
			if err := m.destroy(name); err != nil {
				klog.FromContext(ctx).Info("Failed to destroy orphaned pod cgroup", "podUID", uid, "err", err)
			}
		}
	}
}

// destroy kills what is left in the cgroup at name, then removes it in every hierarchy
// (upstream's pod container manager Destroy). Upstream's error wording.
func (m *Manager) destroy(name string) error {
	mgr, err := m.tree.open(name, m.libConfig(name, nil))
	if err != nil {
		return fmt.Errorf("failed to delete cgroup paths for %s : %v", name, err)
	}
	if err := killAll(mgr); err != nil {
		return fmt.Errorf("failed to kill all the processes attached to the %s cgroups : %v", name, err)
	}
	if err := mgr.Destroy(); err != nil {
		return fmt.Errorf("failed to delete cgroup paths for %s : %v", name, err)
	}
	return nil
}

// killAll sends SIGKILL to every process in the cgroup and its sub-cgroups, trying up to
// five times as upstream does; a process already gone is killed.
func killAll(mgr cgroups.Manager) error {
	pids, err := allPids(mgr)
	if err != nil {
		return err
	}
	var errs []error
	for range 5 {
		errs = errs[:0]
		left := pids[:0]
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("pid %d: %w", pid, err))
				left = append(left, pid)
			}
		}
		if pids = left; len(pids) == 0 {
			return nil
		}
	}
	return errors.Join(errs...)
}

// allPids are the processes in the cgroup and its sub-cgroups in any hierarchy: the
// library's own GetAllPids reads the devices hierarchy only, which pod cgroups skip.
func allPids(mgr cgroups.Manager) ([]int, error) {
	var out []int
	for _, p := range mgr.GetPaths() {
		pids, err := cgroups.GetAllPids(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, pid := range pids {
			if !slices.Contains(out, pid) {
				out = append(out, pid)
			}
		}
	}
	return out, nil
}
