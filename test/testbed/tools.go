package testbed

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// ToolsBinEnv names a folder holding the pinned upstream tools (etcd, kube-apiserver, ...),
// for beds started from a copy of this module without its nested test/tools module.
const ToolsBinEnv = "MINIKUBELET_TOOLS_BIN"

// FindTools returns the folder of the pinned upstream tools. In a clone it builds them
// (hack/build-tools.sh, cached by their pins). A copy of this module in another module's
// module cache has no test/tools (nested modules are cut from module zips) and is
// read-only, so there the folder comes from $MINIKUBELET_TOOLS_BIN or from the cache a
// clone's `make deps` filled.
func FindTools() (string, error) {
	if dir := os.Getenv(ToolsBinEnv); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "kube-apiserver")); err != nil {
			return "", fmt.Errorf("%s=%s: %w", ToolsBinEnv, dir, err)
		}
		return dir, nil
	}
	if _, err := os.Stat(filepath.Join(RepoRoot(), "test", "tools", "go.mod")); err == nil {
		return BuildTools()
	}
	return CachedTools()
}

// CacheDir is where hack/build-tools.sh keeps what it builds.
func CacheDir() string {
	if d := os.Getenv("MINIKUBELET_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "minikubelet")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "minikubelet")
}

// CachedTools is the most recently completed tools folder in CacheDir (the build script
// marks a folder complete with .complete once every tool is in it).
func CachedTools() (string, error) {
	marks, _ := filepath.Glob(filepath.Join(CacheDir(), "tools-*", "bin", ".complete"))
	if len(marks) == 0 {
		return "", errors.New("the pinned upstream tools (kube-apiserver, etcd, ...) are not built: run `make deps` in a clone of minikubelet (they are cached in " +
			CacheDir() + "), or set " + ToolsBinEnv)
	}
	mtime := func(p string) time.Time {
		fi, err := os.Stat(p)
		if err != nil {
			return time.Time{}
		}
		return fi.ModTime()
	}
	sort.Slice(marks, func(i, j int) bool { return mtime(marks[i]).After(mtime(marks[j])) })
	return filepath.Dir(marks[0]), nil
}
