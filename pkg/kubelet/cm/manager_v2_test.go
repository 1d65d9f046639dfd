package cm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs2"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// fakeV2 is a cgroup v2 tree in dir: the library's v2 manager writes its files there
// (cgroups.TestMode lets it write plain files); Apply makes the directory with the
// controllers a v2 cgroup lists, as the kernel would.
func fakeV2(t *testing.T, dir string) tree {
	cgroups.TestMode = true
	t.Cleanup(func() { cgroups.TestMode = false })
	return tree{unified: true, hugetlb: true, open: func(name string, c *cgroups.Cgroup) (cgroups.Manager, error) {
		p := filepath.Join(dir, name)
		m, err := fs2.NewManager(c, p)
		return fakeApply{m, p}, err
	}}
}

type fakeApply struct {
	cgroups.Manager
	dir string
}

func (f fakeApply) Apply(int) error {
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(f.dir, "cgroup.controllers"), []byte("cpuset cpu io memory hugetlb pids\n"), 0o644)
}

// Destroy: a fake cgroup's files are plain files, which the kernel would drop with it.
func (f fakeApply) Destroy() error { return os.RemoveAll(f.dir) }

// TestManagerCgroupV2 checks the files and values of the QoS and pod cgroups on cgroup v2
// for both drivers' layouts: cpu.weight by upstream's linear conversion, cpu.max,
// memory.max, pids.max and a zero limit for huge pages not asked for.
func TestManagerCgroupV2(t *testing.T) {
	for _, c := range []struct {
		driver                      string
		node, burstable, besteffort string
		guaranteed, burstablePod    string
	}{
		{cri.CgroupfsDriver, "kubepods", "kubepods/burstable", "kubepods/besteffort", "kubepods/podg1", "kubepods/burstable/podb1"},
		{cri.SystemdDriver, "kubepods.slice", "kubepods.slice/kubepods-burstable.slice", "kubepods.slice/kubepods-besteffort.slice",
			"kubepods.slice/kubepods-podg1.slice", "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podb1.slice"},
	} {
		t.Run(c.driver, func(t *testing.T) {
			dir := t.TempDir()
			var active []*v1.Pod
			m := NewManager(testConfig(c.driver, "", []string{"2MB"}, &active))
			m.tree = fakeV2(t, dir)
			g, b := startTwoPods(t, m, &active)
			read := func(cg, file string) string {
				bs, err := os.ReadFile(filepath.Join(dir, cg, file))
				if err != nil {
					return err.Error()
				}
				return strings.TrimSpace(string(bs))
			}
			for _, w := range []struct{ cg, file, want string }{
				{c.node, "cpu.weight", "59"}, // 1536 shares
				{c.node, "memory.max", "1073741824"},
				{c.node, "pids.max", "1000"},
				{c.burstable, "cpu.weight", "12"}, // 307 shares
				{c.besteffort, "cpu.weight", "1"}, // 2 shares
				{c.guaranteed, "cpu.weight", "8"}, // 204 shares
				{c.guaranteed, "cpu.max", "20000 100000"},
				{c.guaranteed, "memory.max", "67108864"},
				{c.guaranteed, "pids.max", "32"},
				{c.guaranteed, "hugetlb.2MB.max", "0"},
				{c.burstablePod, "cpu.weight", "12"},
			} {
				if got := read(w.cg, w.file); got != w.want {
					t.Errorf("%s/%s = %s, want %s", w.cg, w.file, got, w.want)
				}
			}
			// A resize rewrites the pod's cpu.max only.
			g.Spec.Containers[0].Resources = v1.ResourceRequirements{Requests: rl("cpu", "500m", "memory", "64Mi"), Limits: rl("cpu", "500m", "memory", "64Mi")}
			if err := m.ResizePod(g, v1.ResourceCPU); err != nil {
				t.Fatal(err)
			}
			if got := read(c.guaranteed, "cpu.max"); got != "50000 100000" {
				t.Errorf("cpu.max after a resize to 500m: %s", got)
			}
			// The pod's cgroup goes with the pod; the burstable class drops its requests.
			active = []*v1.Pod{g}
			if err := m.RemovePod(b); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(dir, c.burstablePod)); !os.IsNotExist(err) {
				t.Errorf("pod cgroup left after RemovePod: %v", err)
			}
			if got := read(c.burstable, "cpu.weight"); got != "1" {
				t.Errorf("burstable cpu.weight after the pod left: %s, want 1", got)
			}
		})
	}
}

func TestCPUWeight(t *testing.T) {
	for shares, want := range map[uint64]uint64{0: 1, 2: 1, 1024: 39, 1536: 59, 262144: 10000, 1 << 20: 10000} {
		if got := CPUWeight(shares); got != want {
			t.Errorf("CPUWeight(%d) = %d, want %d", shares, got, want)
		}
	}
}

// TestUpdateQOSWritesChangesOnly: a pod's start writes a QoS cgroup only when its
// settings change (a BestEffort pod changes neither), and the periodic update writes
// both regardless, repairing a change from outside.
func TestUpdateQOSWritesChangesOnly(t *testing.T) {
	dir := t.TempDir()
	var active []*v1.Pod
	m := NewManager(testConfig(cri.CgroupfsDriver, "", nil, &active))
	m.tree = fakeV2(t, dir)
	startTwoPods(t, m, &active)
	file := func(cg string) string { return filepath.Join(dir, cg, "cpu.weight") }
	read := func(cg string) string {
		b, err := os.ReadFile(file(cg))
		if err != nil {
			return err.Error()
		}
		return strings.TrimSpace(string(b))
	}
	// Changed from outside: a pod's start leaves each alone unless it changes its settings.
	for _, cg := range []string{"kubepods/burstable", "kubepods/besteffort"} {
		if err := os.WriteFile(file(cg), []byte("77"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A BestEffort pod changes neither; a Burstable one the burstable class's shares
	// (300m + 100m = 409, weight 16), so only that is written.
	for _, step := range []struct {
		uid                types.UID
		class              v1.PodQOSClass
		cpu                string
		burstable, bestEff string
	}{{"e1", v1.PodQOSBestEffort, "", "77", "77"}, {"b2", v1.PodQOSBurstable, "100m", "16", "77"}} {
		p := pod(ctr(nil, nil))
		if step.cpu != "" {
			p = pod(ctr(rl("cpu", step.cpu), nil))
		}
		p.UID, p.Status.QOSClass = step.uid, step.class
		active = append(active, p)
		if err := m.EnsurePod(p); err != nil {
			t.Fatal(err)
		}
		if b, e := read("kubepods/burstable"), read("kubepods/besteffort"); b != step.burstable || e != step.bestEff {
			t.Errorf("after a %s pod's start: burstable %s, besteffort %s; want %s, %s", step.class, b, e, step.burstable, step.bestEff)
		}
	}
	// The periodic update writes both.
	if err := m.updateQOS(true); err != nil {
		t.Fatal(err)
	}
	if b, e := read("kubepods/burstable"), read("kubepods/besteffort"); b != "16" || e != "1" {
		t.Errorf("after the periodic update: burstable %s (want 16), besteffort %s (want 1)", b, e)
	}
}
