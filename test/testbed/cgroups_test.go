package testbed

import (
	"os"
	"path/filepath"
	"testing"
)

// The pod cgroups of the pods the bed tore down go, in every hierarchy and with their
// sub-cgroups; other pods' cgroups, a busy one, and directories outside kubepods stay.
func TestRemovePodCgroups(t *testing.T) {
	root := t.TempDir()
	mk := func(p string) string {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	gone := []string{
		mk("cpu,cpuacct/kubepods/besteffort/poda1/ctr1"),
		mk("memory/kubepods/burstable/poda1"),
		mk("pids/mkbed-bench-pods/kubepods/podb2"),
	}
	kept := []string{
		mk("cpu,cpuacct/kubepods/besteffort/podc3"), // not the bed's
		mk("memory/other/poda1"),                    // not under kubepods
		mk("memory/kubepods/podb2"),                 // has a process (a file, here)
	}
	if err := os.WriteFile(filepath.Join(kept[2], "cgroup.procs"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	removePodCgroups(root, map[string]bool{"a1": true, "b2": true})
	for _, p := range gone {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left (%v)", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "cpu,cpuacct/kubepods/besteffort/poda1")); !os.IsNotExist(err) {
		t.Errorf("the pod cgroup of a removed container cgroup is left (%v)", err)
	}
	for _, p := range kept {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
}
