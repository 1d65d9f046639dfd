package testbed

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
)

// CgroupHierarchies are the mounted cgroup hierarchies (v1 controllers, name=systemd,
// the unified one): the cgroup mounts themselves, not the comma-joined symlinks beside
// them or plain directories left on the tmpfs.
func CgroupHierarchies() []string {
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	var out []string
	for _, e := range entries {
		p := filepath.Join("/sys/fs/cgroup", e.Name())
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() && isMountPoint(p) {
			out = append(out, p)
		}
	}
	return out
}

// isMountPoint says whether path is a mount point.
func isMountPoint(path string) bool {
	mounts, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(path))
	return err == nil && len(mounts) > 0
}

// MakeCgroup makes the cgroup name in every hierarchy (a cpuset one with its parent's CPUs
// and memory nodes, without which it takes no task) and returns their cgroup.procs files,
// for a process to move itself into.
func MakeCgroup(name string) ([]string, error) {
	var procs []string
	for _, h := range CgroupHierarchies() {
		if err := MakeCgroupIn(h, name, 0); err != nil {
			return nil, err
		}
		procs = append(procs, filepath.Join(h, name, "cgroup.procs"))
	}
	return procs, nil
}

// MakeCgroupEverywhere creates rel and its missing parents in every hierarchy, as a
// kubelet makes its QoS and pod cgroups (MakeCgroupIn).
func MakeCgroupEverywhere(rel string, shares uint64) error {
	for _, h := range CgroupHierarchies() {
		if err := MakeCgroupIn(h, rel, shares); err != nil {
			return err
		}
	}
	return nil
}

// MakeCgroupIn creates the cgroup path rel and its missing parents in hierarchy h: a new
// cpuset level gets its parent's CPUs and memory nodes (it starts with none); shares > 0
// sets rel's cpu.shares where h is the v1 cpu controller's ("cpu" or "cpu,cpuacct").
func MakeCgroupIn(h, rel string, shares uint64) error {
	dir := h
	for _, part := range strings.Split(strings.Trim(rel, "/"), "/") {
		dir = filepath.Join(dir, part)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		if filepath.Base(h) != "cpuset" {
			continue
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			cur, _ := os.ReadFile(filepath.Join(dir, f))
			if strings.TrimSpace(string(cur)) != "" {
				continue
			}
			v, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
				return fmt.Errorf("%s/%s: %w", dir, f, err)
			}
		}
	}
	if shares > 0 && slices.Contains(strings.Split(filepath.Base(h), ","), "cpu") {
		if err := os.WriteFile(filepath.Join(dir, "cpu.shares"), []byte(strconv.FormatUint(shares, 10)), 0o644); err != nil {
			return fmt.Errorf("%s/cpu.shares: %w", dir, err)
		}
	}
	return nil
}

// RemoveCgroupEverywhere removes the cgroup name and its descendants in every hierarchy.
// Cgroups that still hold processes cannot be removed; the error names them.
func RemoveCgroupEverywhere(name string) error {
	var errs []error
	for _, h := range CgroupHierarchies() {
		errs = append(errs, RemoveCgroupTree(filepath.Join(h, name)))
	}
	return errors.Join(errs...)
}

// RemoveCgroupTree removes a cgroup and its descendants, deepest first; a cgroup whose
// last process is still exiting is retried for a few seconds. The error names the
// cgroups left.
func RemoveCgroupTree(root string) error { return removeCgroupTree(root, 5*time.Second) }

func removeCgroupTree(root string, wait time.Duration) error {
	dirs := cgroupDirs(root)
	slices.Reverse(dirs)
	var left []string
	for _, d := range dirs {
		for deadline := time.Now().Add(wait); ; time.Sleep(100 * time.Millisecond) {
			err := os.Remove(d)
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				left = append(left, d)
				break
			}
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("cgroups not removed (still in use?): %s", strings.Join(left, ", "))
	}
	return nil
}

// KillCgroupEverywhere SIGKILLs every process in the cgroup name and its descendants, in
// every hierarchy, and returns how many it signalled. It is for a bed's own cgroup root
// at teardown: what is still there is a pod whose runtime could not stop it (the runtime
// died or hung first), and only a kill lets the cgroups go.
func KillCgroupEverywhere(name string) int {
	killed := map[int]bool{}
	for _, h := range CgroupHierarchies() {
		killCgroupTree(filepath.Join(h, name), killed)
	}
	return len(killed)
}

// killCgroupTree SIGKILLs the processes in root and its descendants (cgroup.procs of
// each) that are not in killed yet, and adds them.
func killCgroupTree(root string, killed map[int]bool) {
	for _, d := range cgroupDirs(root) {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil || pid <= 1 || killed[pid] {
				continue
			}
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed[pid] = true
			}
		}
	}
}

// cgroupDirs lists root and the directories below it, parents first.
func cgroupDirs(root string) []string {
	var dirs []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	return dirs
}
