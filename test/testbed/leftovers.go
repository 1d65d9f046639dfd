package testbed

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// hostRuntimeDirs are the machine-wide folders where a containerd's tasks leave things
// outside its own state folder, whatever that folder is.
type hostRuntimeDirs struct {
	Sockets string // the shims' sockets, /run/containerd/s/<hash>
	Runc    string // runc's state, <Runc>/<namespace>/<container ID>
	Netns   string // the pods' network namespaces (containerd 1.6 names them cni-<uuid>)
}

var hostDirs = hostRuntimeDirs{Sockets: "/run/containerd/s", Runc: "/run/containerd/runc", Netns: "/run/netns"}

// taskBundles are the task bundles of every containerd the bed ran (its own, its node
// runtimes', its systemd node's). A bundle outlives its task only when the task's shim
// was killed rather than asked to delete it.
func (b *Bed) taskBundles() []string {
	var out []string
	for _, dir := range []string{"containerd", "runtimes/*", "systemd/containerd"} {
		m, _ := filepath.Glob(filepath.Join(b.Dir, dir, "state", "io.containerd.runtime.v2.task", "*", "*"))
		out = append(out, m...)
	}
	return out
}

// removeTaskLeftovers removes, for each task bundle, what its task left in the machine's
// shared folders: the shim's socket (the bundle's address file names it), runc's state
// (named by the task's namespace and ID) and the pod's network namespace (the sandbox's
// OCI spec names it). Only paths inside dirs are touched; call it once the bed's shims
// and containers are gone. It returns how many it removed.
func removeTaskLeftovers(bundles []string, dirs hostRuntimeDirs) int {
	n := 0
	remove := func(path string, unmount bool) {
		if unmount {
			_ = syscall.Unmount(path, syscall.MNT_DETACH) // a netns is a bind mount of nsfs
		}
		if os.RemoveAll(path) == nil {
			n++
		}
	}
	for _, bundle := range bundles {
		id, ns := filepath.Base(bundle), filepath.Base(filepath.Dir(bundle))
		if p := filepath.Join(dirs.Runc, ns, id); exists(p) {
			remove(p, false)
		}
		if addr, err := os.ReadFile(filepath.Join(bundle, "address")); err == nil {
			if p, ok := within(dirs.Sockets, strings.TrimPrefix(strings.TrimSpace(string(addr)), "unix://")); ok && exists(p) {
				remove(p, false)
			}
		}
		if p, ok := within(dirs.Netns, networkNamespace(filepath.Join(bundle, "config.json"))); ok && exists(p) {
			remove(p, true)
		}
	}
	return n
}

// networkNamespace is the network namespace path the OCI spec at path names ("" if none;
// a pod's containers name their sandbox's by /proc/<pid>/ns/net).
func networkNamespace(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var spec struct {
		Linux struct {
			Namespaces []struct{ Type, Path string } `json:"namespaces"`
		} `json:"linux"`
	}
	if json.Unmarshal(data, &spec) != nil {
		return ""
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == "network" {
			return ns.Path
		}
	}
	return ""
}

// within returns p cleaned if it lies directly in dir.
func within(dir, p string) (string, bool) {
	if p == "" {
		return "", false
	}
	p = filepath.Clean(p)
	return p, filepath.Dir(p) == filepath.Clean(dir)
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
