package testbed

import (
	"os"
	"path/filepath"
	"testing"
)

// A bed's teardown removes what its killed tasks left in the shared folders (socket, runc
// state, network namespace) and nothing of another bed's, nor a path outside them that a
// bundle names.
func TestRemoveTaskLeftovers(t *testing.T) {
	tmp := t.TempDir()
	host := hostRuntimeDirs{Sockets: filepath.Join(tmp, "s"), Runc: filepath.Join(tmp, "runc"), Netns: filepath.Join(tmp, "netns")}
	b := &Bed{Dir: filepath.Join(tmp, "bed")}
	write := func(path, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bundle := func(runtimeDir, id, address, netns string) {
		dir := filepath.Join(b.Dir, runtimeDir, "state", "io.containerd.runtime.v2.task", "k8s.io", id)
		write(filepath.Join(dir, "address"), "unix://"+address+"\n")
		write(filepath.Join(dir, "config.json"), `{"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"`+netns+`"}]}}`)
	}
	outside := filepath.Join(tmp, "elsewhere", "keep")
	bundle("containerd", "sandbox1", filepath.Join(host.Sockets, "hash1"), filepath.Join(host.Netns, "cni-1"))
	bundle("containerd", "ctr1", filepath.Join(host.Sockets, "hash1"), "/proc/42/ns/net") // the sandbox's shim and netns
	bundle("runtimes/rt", "sandbox2", filepath.Join(host.Sockets, "hash2"), filepath.Join(host.Netns, "cni-2"))
	bundle("systemd/containerd", "odd", outside, outside) // names paths outside the shared folders
	for _, p := range []string{
		filepath.Join(host.Sockets, "hash1"), filepath.Join(host.Sockets, "hash2"), filepath.Join(host.Sockets, "other"),
		filepath.Join(host.Runc, "k8s.io", "sandbox1", "state.json"), filepath.Join(host.Runc, "k8s.io", "ctr1", "state.json"),
		filepath.Join(host.Runc, "k8s.io", "sandbox2", "state.json"), filepath.Join(host.Runc, "k8s.io", "other", "state.json"),
		filepath.Join(host.Netns, "cni-1"), filepath.Join(host.Netns, "cni-2"), filepath.Join(host.Netns, "cni-other"), outside,
	} {
		write(p, "")
	}
	if len(b.taskBundles()) != 4 {
		t.Fatalf("bundles %v, want 4", b.taskBundles())
	}
	if n := removeTaskLeftovers(b.taskBundles(), host); n != 7 {
		t.Errorf("removed %d, want 7 (2 sockets, 3 runc states, 2 netns)", n)
	}
	for p, want := range map[string]bool{
		filepath.Join(host.Sockets, "hash1"): false, filepath.Join(host.Sockets, "hash2"): false, filepath.Join(host.Sockets, "other"): true,
		filepath.Join(host.Runc, "k8s.io", "sandbox1"): false, filepath.Join(host.Runc, "k8s.io", "ctr1"): false,
		filepath.Join(host.Runc, "k8s.io", "sandbox2"): false, filepath.Join(host.Runc, "k8s.io", "other"): true,
		filepath.Join(host.Netns, "cni-1"): false, filepath.Join(host.Netns, "cni-2"): false, filepath.Join(host.Netns, "cni-other"): true,
		outside: true,
	} {
		if exists(p) != want {
			t.Errorf("%s: exists %v, want %v", p, exists(p), want)
		}
	}
	if n := removeTaskLeftovers(b.taskBundles(), host); n != 0 {
		t.Errorf("second pass removed %d", n)
	}
}
