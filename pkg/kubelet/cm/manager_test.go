package cm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/cgroups"
	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// TestManagerCgroupfs makes the QoS cgroups and a pod's under a root of its own on this
// machine's cgroup v1 hierarchies (cgroupfs driver) and reads the files back.
func TestManagerCgroupfs(t *testing.T) {
	if os.Geteuid() != 0 || cgroups.IsCgroup2UnifiedMode() {
		t.Skip("needs root and cgroup v1")
	}
	root := fmt.Sprintf("/mkl-unit-cm-%d", os.Getpid())
	t.Cleanup(func() { removeTree(root) }) // the library makes the cgroups in every hierarchy
	var active []*v1.Pod
	m := NewManager(testConfig(cri.CgroupfsDriver, root, cgroups.HugePageSizes(), &active))
	g, b := startTwoPods(t, m, &active)
	read := func(ctrl, cg, file string) string {
		bs, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", ctrl, root, cg, file))
		if err != nil {
			return err.Error()
		}
		return strings.TrimSpace(string(bs))
	}
	for _, c := range []struct{ ctrl, cg, file, want string }{
		{"cpu", "kubepods", "cpu.shares", "1536"},
		{"memory", "kubepods", "memory.limit_in_bytes", "1073741824"},
		{"pids", "kubepods", "pids.max", "1000"},
		{"cpu", "kubepods/burstable", "cpu.shares", "307"},
		{"cpu", "kubepods/besteffort", "cpu.shares", "2"},
		{"cpu", "kubepods/podg1", "cpu.cfs_quota_us", "20000"},
		{"memory", "kubepods/podg1", "memory.limit_in_bytes", "67108864"},
		{"pids", "kubepods/podg1", "pids.max", "32"},
		{"cpu", "kubepods/burstable/podb1", "cpu.shares", "307"},
		{"cpu", "kubepods/burstable/podb1", "cpu.cfs_quota_us", "-1"},
	} {
		if got := read(c.ctrl, c.cg, c.file); got != c.want {
			t.Errorf("%s/%s = %s, want %s", c.cg, c.file, got, c.want)
		}
	}
	// An existing pod cgroup is left as it is (upstream's EnsureExists); the QoS
	// cgroups follow the pods.
	if err := os.WriteFile(filepath.Join("/sys/fs/cgroup/pids", root, "kubepods/podg1/pids.max"), []byte("40"), 0o644); err != nil {
		t.Fatal(err)
	}
	active = []*v1.Pod{g}
	if err := m.EnsurePod(g); err != nil {
		t.Fatal(err)
	}
	if got := read("pids", "kubepods/podg1", "pids.max"); got != "40" {
		t.Errorf("existing pod cgroup rewritten: pids.max %s", got)
	}
	if got := read("cpu", "kubepods/burstable", "cpu.shares"); got != "2" {
		t.Errorf("burstable shares after the Burstable pod left: %s, want 2", got)
	}
	// The pod's cgroup goes in every hierarchy, with the empty cgroups left in it (CRI-O's
	// crio-conmon-<id>); a second removal is no error.
	if err := os.MkdirAll(filepath.Join("/sys/fs/cgroup/memory", root, "kubepods/burstable/podb1/crio-conmon-a"), 0o755); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := m.RemovePod(b); err != nil {
			t.Fatal(err)
		}
	}
	for _, ctrl := range []string{"cpu", "memory", "pids", "systemd"} {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", ctrl, root, "kubepods/burstable/podb1")); !os.IsNotExist(err) {
			t.Errorf("%s: pod cgroup left after RemovePod: %v", ctrl, err)
		}
	}
}

// testConfig is the tests' manager config: 1.5 CPUs, 1Gi and 1000 PIDs allocatable,
// CPU limits enforced, podPidsLimit 32; the active pods are *active.
func testConfig(driver, root string, hugePageSizes []string, active *[]*v1.Pod) ManagerConfig {
	return ManagerConfig{Driver: driver, Root: root, Allocatable: rl("cpu", "1500m", "memory", "1Gi", "pid", "1000"),
		Pod:        PodOptions{EnforceCPULimits: true, PidsLimit: 32, HugePageSizes: hugePageSizes},
		ActivePods: func() []*v1.Pod { return *active }}
}

// startTwoPods starts m and makes the cgroups of a Guaranteed pod (200m, 64Mi; UID g1) and
// a Burstable one (300m requested; b1), which become *active.
func startTwoPods(t *testing.T, m *Manager, active *[]*v1.Pod) (g, b *v1.Pod) {
	t.Helper()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	g = pod(ctr(rl("cpu", "200m", "memory", "64Mi"), rl("cpu", "200m", "memory", "64Mi")))
	g.UID, g.Status.QOSClass = "g1", v1.PodQOSGuaranteed
	b = pod(ctr(rl("cpu", "300m"), nil))
	b.UID, b.Status.QOSClass = "b1", v1.PodQOSBurstable
	*active = []*v1.Pod{g, b}
	for _, p := range *active {
		if err := m.EnsurePod(p); err != nil {
			t.Fatal(err)
		}
	}
	return g, b
}
