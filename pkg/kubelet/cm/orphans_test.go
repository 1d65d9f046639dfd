package cm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/cgroups"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

func TestPodCgroupUID(t *testing.T) {
	for _, c := range []struct {
		driver, base string
		want         types.UID
		ok           bool
	}{
		{cri.CgroupfsDriver, "pod6f847b3b-fca2-45e4-b67d-1f6ab6f97c1b", "6f847b3b-fca2-45e4-b67d-1f6ab6f97c1b", true},
		{cri.CgroupfsDriver, "burstable", "", false},
		{cri.CgroupfsDriver, "pod", "", false},
		{cri.CgroupfsDriver, "pod..", "", false},
		{cri.CgroupfsDriver, "crio-conmon-a", "", false},
		{cri.SystemdDriver, "kubepods-besteffort-pod6f847b3b_fca2_45e4.slice", "6f847b3b-fca2-45e4", true},
		{cri.SystemdDriver, "kubepods-podg1.slice", "g1", true},
		{cri.SystemdDriver, "kubepods-burstable.slice", "", false},
		{cri.SystemdDriver, "kubepods-besteffort-podx.scope", "", false},
		{cri.SystemdDriver, "pod.slice", "", false},
		{cri.SystemdDriver, ".slice", "", false},
	} {
		got, ok := podCgroupUID(c.driver, c.base)
		if got != c.want || ok != c.ok {
			t.Errorf("podCgroupUID(%s, %q) = %q, %v; want %q, %v", c.driver, c.base, got, ok, c.want, c.ok)
		}
	}
}

// TestSweepOrphansV2 finds both drivers' pod cgroups in a fake v2 tree and removes only
// the gone pod's.
func TestSweepOrphansV2(t *testing.T) {
	for _, c := range []struct{ driver, guaranteed, burstablePod string }{
		{cri.CgroupfsDriver, "/kubepods/podg1", "/kubepods/burstable/podb1"},
		{cri.SystemdDriver, "/kubepods.slice/kubepods-podg1.slice", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podb1.slice"},
	} {
		t.Run(c.driver, func(t *testing.T) {
			dir := t.TempDir()
			var active []*v1.Pod
			m := NewManager(testConfig(c.driver, "", nil, &active))
			m.tree = fakeV2(t, dir)
			m.tree.roots = func() ([]string, error) { return []string{dir}, nil }
			startTwoPods(t, m, &active)
			found, err := m.PodCgroups()
			if err != nil {
				t.Fatal(err)
			}
			if want := map[types.UID]string{"g1": c.guaranteed, "b1": c.burstablePod}; fmt.Sprint(found) != fmt.Sprint(want) {
				t.Fatalf("PodCgroups = %v, want %v", found, want)
			}
			m.SweepOrphans(context.Background(), func(uid types.UID) PodUse {
				if uid == "g1" {
					return PodInUse
				}
				return PodGone
			})
			if _, err := os.Stat(filepath.Join(dir, c.burstablePod)); !os.IsNotExist(err) {
				t.Errorf("gone pod's cgroup left: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, c.guaranteed)); err != nil {
				t.Errorf("pod in use lost its cgroup: %v", err)
			}
		})
	}
}

// TestSweepOrphansCgroupfs sweeps pod cgroups on this machine's cgroup v1 hierarchies
// under a root of its own: a gone pod's cgroup goes in every hierarchy, the process left
// in it killed first; a pod with volumes left keeps its cgroup at the least CPU shares; a
// pod in use is not touched.
func TestSweepOrphansCgroupfs(t *testing.T) {
	if os.Geteuid() != 0 || cgroups.IsCgroup2UnifiedMode() {
		t.Skip("needs root and cgroup v1")
	}
	root := fmt.Sprintf("/mkl-unit-sweep-%d", os.Getpid())
	t.Cleanup(func() { removeTree(root) })
	var active []*v1.Pod
	m := NewManager(testConfig(cri.CgroupfsDriver, root, cgroups.HugePageSizes(), &active))
	g, b := startTwoPods(t, m, &active)
	be := pod(ctr(nil, nil))
	be.UID, be.Status.QOSClass = "e1", v1.PodQOSBestEffort
	if err := m.EnsurePod(be); err != nil {
		t.Fatal(err)
	}
	// A process left in the Burstable pod's cgroup, as after a node agent's crash.
	sleep := exec.Command("sleep", "600")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleep.Process.Kill() })
	bName := cri.PodCgroupParent(cri.CgroupfsDriver, root, b)
	mgr, err := m.tree.open(bName, m.libConfig(bName, nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Apply(sleep.Process.Pid); err != nil {
		t.Fatal(err)
	}
	use := map[types.UID]PodUse{g.UID: PodInUse, b.UID: PodGone, be.UID: PodVolumesLeft}
	m.SweepOrphans(context.Background(), func(uid types.UID) PodUse { return use[uid] })

	waited := make(chan error, 1)
	go func() { waited <- sleep.Wait() }()
	select {
	case err := <-waited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ProcessState.String() != "signal: killed" {
			t.Errorf("process in the gone pod's cgroup: %v, want killed", err)
		}
	case <-time.After(30 * time.Second): // a bound on a hang, not a timing goal
		t.Errorf("process in the gone pod's cgroup still runs")
	}
	for _, h := range []string{"cpu", "memory", "pids", "devices", "systemd"} {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", h, bName)); !os.IsNotExist(err) {
			t.Errorf("%s: gone pod's cgroup left: %v", h, err)
		}
	}
	read := func(cg, file string) string {
		bs, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/cpu", cg, file))
		if err != nil {
			return err.Error()
		}
		return strings.TrimSpace(string(bs))
	}
	if got := read(cri.PodCgroupParent(cri.CgroupfsDriver, root, be), "cpu.shares"); got != "2" {
		t.Errorf("pod with volumes left: cpu.shares %s, want 2", got)
	}
	if got := read(cri.PodCgroupParent(cri.CgroupfsDriver, root, g), "cpu.shares"); got != "204" {
		t.Errorf("pod in use: cpu.shares %s, want 204", got)
	}
}

// removeTree removes the cgroup root in every hierarchy, deepest first.
func removeTree(root string) {
	hier, _ := os.ReadDir("/sys/fs/cgroup")
	for _, h := range hier {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join("/sys/fs/cgroup", h.Name(), root), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i])
		}
	}
}
