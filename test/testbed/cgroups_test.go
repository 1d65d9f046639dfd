package testbed

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
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

// Only cgroup mounts are hierarchies, whatever else lies in /sys/fs/cgroup.
func TestCgroupHierarchiesAreMounts(t *testing.T) {
	hs := CgroupHierarchies()
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
		if filepath.Dir(h) != "/sys/fs/cgroup" {
			t.Errorf("%s outside /sys/fs/cgroup", h)
		}
	}
}

// A teardown kills what is left in a cgroup tree at any depth, once each, and then
// removes the tree; a cgroup that cannot go is named.
func TestKillAndRemoveCgroupTree(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mkbed-x")
	pod := filepath.Join(root, "node", "kubepods", "besteffort", "pod1")
	if err := os.MkdirAll(pod, 0o755); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill() })
	pid := strconv.Itoa(sleeper.Process.Pid)
	for _, d := range []string{root, pod} { // listed twice: signalled once
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(pid+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	killed := map[int]bool{}
	killCgroupTree(root, killed)
	if len(killed) != 1 || !killed[sleeper.Process.Pid] {
		t.Fatalf("killed %v, want only %s", killed, pid)
	}
	err := sleeper.Wait()
	if ws, ok := sleeper.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("sleep ended with %v, want SIGKILL", err)
	}

	// On a real cgroup fs the files are not in the way; here the one left stands for a
	// cgroup still in use.
	_ = os.Remove(filepath.Join(root, "cgroup.procs"))
	if err := removeCgroupTree(root, 0); err == nil || !strings.Contains(err.Error(), pod) {
		t.Fatalf("removeCgroupTree = %v, want %s named", err, pod)
	}
	_ = os.Remove(filepath.Join(pod, "cgroup.procs"))
	if err := removeCgroupTree(root, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Fatalf("%s still there (%v)", root, err)
	}
}

// A containerd process (by its command name) keeps the shared runtime dirs and CNI chains.
func TestRuntimeRunning(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "containerd-shim-fake")
	data, err := os.ReadFile("/bin/sleep")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	p := exec.Command(bin, "60")
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Process.Kill(); _ = p.Wait() }()
	if !runtimeRunning() {
		t.Fatal("a running containerd-shim-fake was not seen")
	}
}
