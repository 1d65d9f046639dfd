package podworker

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRemoveCgroup: a pod cgroup goes with the empty cgroups left in it (CRI-O's
// crio-conmon-<id>), deepest first; a missing one is no error.
func TestRemoveCgroup(t *testing.T) {
	pod := filepath.Join(t.TempDir(), "kubepods", "podu1")
	for _, d := range []string{"crio-conmon-a", "crio-conmon-b/x"} {
		if err := os.MkdirAll(filepath.Join(pod, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := removeCgroup(pod); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pod); !os.IsNotExist(err) {
		t.Errorf("pod cgroup still there: %v", err)
	}
	if err := removeCgroup(pod); err != nil {
		t.Errorf("missing cgroup: %v", err)
	}
}
