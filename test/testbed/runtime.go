package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The container runtimes a bed can run (Options.Runtime, default from $MINIKUBELET_RUNTIME).
const (
	// RuntimeContainerd is Debian's containerd (1.6): CRI without RuntimeConfig or
	// GetContainerEvents.
	RuntimeContainerd = "containerd"
	// RuntimeContainerd2 is containerd 2.x built from test/tools/containerd2 (its pin) by
	// hack/build-containerd2.sh, with Debian's runc.
	RuntimeContainerd2 = "containerd2"
	// RuntimeCRIO is CRI-O built from test/tools/crio (its pin) by hack/build-crio.sh, with
	// Debian's conmon (crio.go).
	RuntimeCRIO = "crio"
	// RuntimeEnv picks the runtime of beds whose Options leave it empty (`make up`, `make test`).
	RuntimeEnv = "MINIKUBELET_RUNTIME"
)

// DefaultRuntime is $MINIKUBELET_RUNTIME, else Debian's containerd.
func DefaultRuntime() string {
	if r := os.Getenv(RuntimeEnv); r != "" {
		return r
	}
	return RuntimeContainerd
}

func checkRuntime(r string) error {
	if r != RuntimeContainerd && r != RuntimeContainerd2 && r != RuntimeCRIO {
		return fmt.Errorf("testbed: unknown runtime %q (%s): want %q, %q or %q", r, RuntimeEnv, RuntimeContainerd, RuntimeContainerd2, RuntimeCRIO)
	}
	return nil
}

// Runtime is the runtime the bed runs (RuntimeContainerd, RuntimeContainerd2 or RuntimeCRIO).
func (b *Bed) Runtime() string { return b.opts.Runtime }

// runtimeBinFile records, in the bed's folder, where the bed's containerd binary lives,
// so that a later run cleaning up after this one starts the same containerd on its state.
func (b *Bed) runtimeBinFile() string { return filepath.Join(b.containerdDir(), "bin-dir") }

// prepareRuntime builds (or finds cached) the bed's containerd (or CRI-O) and records its
// folder.
func (b *Bed) prepareRuntime() error {
	switch b.opts.Runtime {
	case RuntimeContainerd:
		return nil
	case RuntimeCRIO:
		return b.prepareCRIO()
	}
	dir, err := runScript("build-containerd2.sh")
	if err != nil {
		return err
	}
	b.runtimeDir = dir
	if err := os.MkdirAll(b.containerdDir(), 0o755); err != nil {
		return err
	}
	return os.WriteFile(b.runtimeBinFile(), []byte(b.runtimeDir), 0o644)
}

// containerdBinDir is the folder of the bed's containerd, or "" for Debian's (on PATH).
func (b *Bed) containerdBinDir() string {
	if b.runtimeDir != "" {
		return b.runtimeDir
	}
	if d, err := os.ReadFile(b.runtimeBinFile()); err == nil {
		return strings.TrimSpace(string(d))
	}
	return ""
}

// startContainerdProc starts the bed's containerd binary as name with config; a
// containerd 2.x finds its own runc shim first on PATH.
func (b *Bed) startContainerdProc(name, config string) (*Proc, error) {
	dir := b.containerdBinDir()
	if dir == "" {
		return b.start(name, "containerd", []string{"--config", config}, nil)
	}
	return b.start(name, filepath.Join(dir, "containerd"), []string{"--config", config},
		[]string{"PATH=" + dir + ":" + os.Getenv("PATH")})
}

// containerd2Config is a containerd 2.x config (version 3): the same settings as the 1.6
// one, under 2.x's plugin names, with the runc built beside it (binDir). NRI is off: its
// socket is one machine-wide path that two runtimes would share.
func containerd2Config(binDir, root, state, socket, opt string, systemdCgroup bool, netd, certs string) string {
	return fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
imports = []
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = %[5]q
[plugins."io.containerd.nri.v1.nri"]
  disable = true
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        SystemdCgroup = %[6]t
        BinaryName = %[11]q
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [%[7]q]
    conf_dir = %[8]q
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = %[9]q
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = %[10]q
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`, root, state, socket, socket+".ttrpc", opt, systemdCgroup, CNIBinDir, netd, PauseImage, certs, filepath.Join(binDir, "runc"))
}
