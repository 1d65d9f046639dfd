package main

import (
	"os"
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

// A new cgroup path gets every level, the parent's cpuset in each new cpuset level, and
// its cpu.shares in the cpu hierarchy only.
func TestMakeCgroupIn(t *testing.T) {
	tmp := t.TempDir()
	cpuset, cpu, mem := filepath.Join(tmp, "cpuset"), filepath.Join(tmp, "cpu,cpuacct"), filepath.Join(tmp, "memory")
	for _, h := range []string{cpuset, cpu, mem} {
		if err := os.Mkdir(h, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(cpuset, "cpuset.cpus"), []byte("0-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cpuset, "cpuset.mems"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{cpuset, cpu, mem} {
		if err := makeCgroupIn(h, "/root/kubepods/besteffort", 2); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"root/cpuset.cpus", "root/kubepods/cpuset.cpus", "root/kubepods/besteffort/cpuset.cpus"} {
		if b, _ := os.ReadFile(filepath.Join(cpuset, f)); string(b) != "0-1\n" {
			t.Errorf("%s = %q, want the parent's", f, b)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(cpu, "root/kubepods/besteffort/cpu.shares")); string(b) != "2" {
		t.Errorf("cpu.shares = %q", b)
	}
	for _, f := range []string{filepath.Join(cpu, "root/kubepods/cpu.shares"), filepath.Join(mem, "root/kubepods/besteffort/cpu.shares"), filepath.Join(cpuset, "root/kubepods/besteffort/cpu.shares")} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s written", f)
		}
	}
}
