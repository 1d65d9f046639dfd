package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/minikubelet/minikubelet/test/testbed"
	"github.com/moby/sys/mountinfo"
)

// cgroupMount is where the cgroup hierarchies are mounted (v1, or hybrid with unified).
const cgroupMount = "/sys/fs/cgroup"

// cgroupHierarchies lists the mounted hierarchies (cpu, memory, ..., unified): the cgroup
// mounts themselves, not whatever else sits in /sys/fs/cgroup (comma-joined symlinks, or
// plain directories a systemd in another mount namespace may have left on the tmpfs).
func cgroupHierarchies() ([]string, error) {
	mounts, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range mounts {
		if filepath.Dir(m.Mountpoint) == cgroupMount {
			out = append(out, m.Mountpoint)
		}
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}

// makeCgroupRoot creates root (e.g. /mkbed-bench-pods) in every hierarchy: the upstream
// kubelet refuses a cgroupRoot that does not exist.
func makeCgroupRoot(root string) error { return makeCgroup(root, 0) }

// makeCgroup creates rel and its missing parents in every hierarchy, as a kubelet makes its
// QoS and pod cgroups (testbed.MakeCgroupIn: cpusets filled, shares > 0 set).
func makeCgroup(rel string, shares uint64) error {
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		if err := testbed.MakeCgroupIn(h, rel, shares); err != nil {
			return err
		}
	}
	return nil
}

// removeCgroupTree removes rel (a cgroup path such as /mkbed-bench-pods, or one pod's
// cgroup) and everything below it in every hierarchy, deepest first. Cgroups that still
// hold processes cannot be removed; those are named in the error.
func removeCgroupTree(rel string) error {
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	var left []string
	for _, h := range hs {
		top := filepath.Join(h, rel)
		var dirs []string
		_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		// Deeper paths are longer than their parents: remove the longest first.
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
				left = append(left, d)
			}
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("cgroups not removed (still in use?): %s", strings.Join(left, ", "))
	}
	return nil
}
