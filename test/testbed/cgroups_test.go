package testbed

import (
	"os"
	"path/filepath"
	"testing"
)

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
		if err := MakeCgroupIn(h, "/root/kubepods/besteffort", 2); err != nil {
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
