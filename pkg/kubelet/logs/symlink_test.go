package logs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSymlinkPath(t *testing.T) {
	for _, tc := range []struct {
		name, pod, ns, container, id, want string
	}{
		{"upstream's name", "web-0", "default", "nginx", "abc123", "/d/web-0_default_nginx-abc123.log"},
		{"cut to 255", strings.Repeat("p", 250), "ns", "c", "id", "/d/" + strings.Repeat("p", 250) + "_.log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := SymlinkPath("/d", tc.pod, tc.ns, tc.container, tc.id)
			if got != tc.want {
				t.Errorf("SymlinkPath = %q, want %q", got, tc.want)
			}
			if n := len(filepath.Base(got)); n > 255 {
				t.Errorf("name is %d characters", n)
			}
		})
	}
}

func TestLinkUnlinkSweep(t *testing.T) {
	root := t.TempDir()
	podLogs, links := filepath.Join(root, "pods"), filepath.Join(root, "containers")
	file := func(name string) string {
		p := filepath.Join(podLogs, "ns_p_uid", name, "0.log")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b, c := file("a"), file("b"), file("c")
	for _, l := range []struct{ name, id, path string }{{"a", "ida", a}, {"b", "idb", b}, {"c", "idc", c}} {
		if err := Link(links, "p", "ns", l.name, l.id, l.path); err != nil {
			t.Fatal(err)
		}
	}
	// Linking twice (a resync) is not an error; a missing file gets no link.
	if err := Link(links, "p", "ns", "a", "ida", a); err != nil {
		t.Errorf("second Link: %v", err)
	}
	if err := Link(links, "p", "ns", "gone", "idg", filepath.Join(podLogs, "none.log")); err != nil {
		t.Errorf("Link to a missing file: %v", err)
	}
	if _, err := os.Lstat(SymlinkPath(links, "p", "ns", "gone", "idg")); !os.IsNotExist(err) {
		t.Errorf("link to a missing file exists (%v)", err)
	}
	if got, err := os.ReadFile(SymlinkPath(links, "p", "ns", "a", "ida")); err != nil || string(got) != "x\n" {
		t.Errorf("reading through the link: %q, %v", got, err)
	}
	if err := Unlink(links, "p", "ns", "a", "ida"); err != nil {
		t.Fatal(err)
	}
	if err := Unlink(links, "p", "ns", "a", "ida"); err != nil {
		t.Errorf("second Unlink: %v", err)
	}
	// b's and c's files go; c is still running (a rotation in progress): only b's link is swept.
	// A foreign dangling link (not into podLogs) is left alone.
	foreign := filepath.Join(links, "other_x_y-z.log")
	if err := os.Symlink("/nonexistent/file", foreign); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(b)
	_ = os.Remove(c)
	if err := SweepDangling(links, podLogs, map[string]bool{"idc": true}); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		SymlinkPath(links, "p", "ns", "a", "ida"): false,
		SymlinkPath(links, "p", "ns", "b", "idb"): false,
		SymlinkPath(links, "p", "ns", "c", "idc"): true,
		foreign: true,
	} {
		_, err := os.Lstat(path)
		if got := err == nil; got != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(path), got, want)
		}
	}
	if err := SweepDangling(filepath.Join(root, "missing"), podLogs, nil); err != nil {
		t.Errorf("sweeping a missing folder: %v", err)
	}
}
