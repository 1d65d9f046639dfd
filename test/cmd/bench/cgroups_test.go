package main

import (
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Only cgroup mounts are hierarchies, whatever else lies in /sys/fs/cgroup.
func TestCgroupHierarchiesAreMounts(t *testing.T) {
	hs, err := cgroupHierarchies()
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) == 0 {
		t.Fatal("no cgroup hierarchy found")
	}
	for _, h := range hs {
		var st unix.Statfs_t
		if err := unix.Statfs(h, &st); err != nil {
			t.Fatal(err)
		}
		if st.Type != unix.CGROUP_SUPER_MAGIC && st.Type != unix.CGROUP2_SUPER_MAGIC {
			t.Errorf("%s is not a cgroup mount (fs type %#x)", h, st.Type)
		}
		if filepath.Dir(h) != cgroupMount {
			t.Errorf("%s outside %s", h, cgroupMount)
		}
	}
}
