// Package testbed starts and stops a real single-node test bed on this machine, all on
// loopback: etcd, the pinned upstream control plane (test/tools), its own containerd with
// CNI on a bridge the project owns, locally built images, an in-process registry, and the
// node agent. `make up` and the e2e tests' TestMain both use it.
package testbed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"k8s.io/client-go/kubernetes"
)

// Options choose the bed's folder and network. Two beds with different names can run at
// once (make up and the e2e tests).
type Options struct {
	Name      string // e.g. "up", "e2e"; names the bridge and CNI network
	Dir       string // default /var/lib/minikubelet-testbed/<Name>
	PodSubnet string // default 10.244.<n>.0/24
	Bridge    string // default mkb-<Name>
	// EtcdFsync makes etcd sync its writes to disk as in production; by default it runs
	// with --unsafe-no-fsync, which keeps the tests fast.
	EtcdFsync bool
	// Runtime is RuntimeContainerd (Debian's 1.6), RuntimeContainerd2 or RuntimeCRIO;
	// default DefaultRuntime ($MINIKUBELET_RUNTIME).
	Runtime string
	// Log receives progress lines (nil: quiet).
	Log func(format string, args ...any)
}

// Bed is a running test bed.
type Bed struct {
	opts            Options
	Dir             string
	ToolsBin        string
	PKI             *PKI
	EtcdURL         string
	APIServerURL    string
	AdminKubeconfig string
	Client          kubernetes.Interface
	// Containerd is the bed's runtime process: containerd, or crio on a CRI-O bed.
	Containerd *Proc
	// Systemd is the systemd and containerd for systemd-driver nodes, once started
	// (StartSystemdRuntime).
	Systemd  *SystemdRuntime
	Registry *Registry
	Images   map[string]v1.Image
	// MinikubeletBin is the node agent binary the bed built.
	MinikubeletBin string

	procs      []*Proc // control plane, stopped in reverse order
	runtimeDir string  // folder of a containerd 2.x binary; "" for Debian's
	crioBin    string  // folder of crio and pinns on a CRI-O bed
}

// Start builds what is missing and starts everything but the node agent.
func Start(opts Options) (*Bed, error) {
	if opts.Name == "" {
		return nil, errors.New("testbed: Options.Name is required")
	}
	opts = withDefaults(opts)
	if err := checkRuntime(opts.Runtime); err != nil {
		return nil, err
	}
	closeInheritedFiles()
	if err := CheckPrerequisites(); err != nil {
		return nil, err
	}
	b := &Bed{opts: opts, Dir: opts.Dir}
	b.cleanup() // whatever an earlier run of the same bed left behind
	if err := os.MkdirAll(b.Dir, 0o755); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			b.Stop()
		}
	}()
	steps := []struct {
		name string
		fn   func() error
	}{
		{"upstream tools (cached after the first build)", b.buildTools},
		{"minikubelet", b.buildMinikubelet},
		{"PKI", func() (err error) { b.PKI, err = NewPKI(filepath.Join(b.Dir, "pki")); return }},
		{"images", func() (err error) { b.Images, err = BuildImages(filepath.Join(b.Dir, "images")); return }},
		{"registry", b.startRegistry},
		{"runtime " + opts.Runtime, b.prepareRuntime},
		{opts.Runtime, b.startContainerdFirst},
		{"etcd", b.startEtcd},
		{"kube-apiserver", b.startAPIServer},
		{"TLS bootstrap RBAC", b.bootstrapRBAC},
		{"controller-manager and scheduler", b.startControllers},
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.fn(); err != nil {
			return nil, fmt.Errorf("testbed %s: %w", s.name, err)
		}
		opts.Log("testbed: %s ready (%.1fs)", s.name, time.Since(start).Seconds())
	}
	ok = true
	return b, nil
}

func withDefaults(opts Options) Options {
	if opts.Dir == "" {
		opts.Dir = filepath.Join("/var/lib/minikubelet-testbed", opts.Name)
	}
	if opts.Bridge == "" {
		opts.Bridge = "mkb-" + opts.Name
	}
	if opts.PodSubnet == "" {
		n := 0
		for _, c := range opts.Name {
			n = (n*31 + int(c)) % 200
		}
		opts.PodSubnet = fmt.Sprintf("10.244.%d.0/24", n+10)
	}
	if opts.Log == nil {
		opts.Log = func(string, ...any) {}
	}
	if opts.Runtime == "" {
		opts.Runtime = DefaultRuntime()
	}
	return opts
}

// CheckPrerequisites says what is missing from the machine, in one error.
func CheckPrerequisites() error {
	var missing []string
	for _, bin := range []string{"containerd", "ctr", "runc", "iptables", "ip", "go"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	for _, f := range []string{CNIBinDir + "/bridge", CNIBinDir + "/host-local", CNIBinDir + "/loopback", CNIBinDir + "/portmap", "/bin/busybox"} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	if len(missing) > 0 {
		return fmt.Errorf("testbed prerequisites missing: %s (run `make deps` as root)", strings.Join(missing, ", "))
	}
	return nil
}

func (b *Bed) buildTools() (err error) {
	b.ToolsBin, err = FindTools()
	return err
}

// BuildTools builds the pinned upstream components once (hack/build-tools.sh; cached by
// their pins) and returns the folder that holds them.
func BuildTools() (string, error) { return runScript("build-tools.sh") }

// runScript runs hack/<name> (a build script that prints what it built) and returns its
// output trimmed; a failure carries the script's stderr.
func runScript(name string) (string, error) {
	out, err := exec.Command(filepath.Join(RepoRoot(), "hack", name)).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("hack/%s: %v\n%s", name, err, ee.Stderr)
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

func (b *Bed) buildMinikubelet() error {
	b.MinikubeletBin = filepath.Join(b.Dir, "bin", "minikubelet")
	return BuildMinikubelet(b.MinikubeletBin, "v0.1.0-testbed")
}

func (b *Bed) startRegistry() error {
	r, err := startRegistry()
	if err != nil {
		return err
	}
	b.Registry = r
	return nil
}

func (b *Bed) startContainerdFirst() error {
	if b.opts.Runtime == RuntimeCRIO {
		return b.startCRIOFirst()
	}
	if err := b.writeContainerdConfig(); err != nil {
		return err
	}
	if err := b.writeRegistryHost(b.Registry.Host, "http://"+b.Registry.Host); err != nil {
		return err
	}
	if err := b.installGuard(); err != nil {
		return err
	}
	if err := b.StartContainerd(); err != nil {
		return err
	}
	return b.ImportImages(b.Images)
}

// Stop stops everything the bed started and releases the bridge, firewall rules, mounts
// and files. Pods still in containerd are torn down through CRI first.
func (b *Bed) Stop() {
	killRecorded(b.Dir, "minikubelet-", "kubelet-")
	for i := len(b.procs) - 1; i >= 0; i-- {
		_ = b.procs[i].Stop(10 * time.Second)
	}
	b.procs = nil
	if b.Registry != nil {
		_ = b.Registry.Close()
	}
	b.cleanup()
}

// cleanup removes what this bed (this run or a dead earlier one) left behind: node agents
// first, then every pod through CRI (starting containerd on the old state if it is not
// running, so that network namespaces and containers are released properly), then the
// remaining processes, mounts, files, firewall rules and the bridge.
func (b *Bed) cleanup() {
	killRecorded(b.Dir, "minikubelet-", "kubelet-")
	b.stopSystemdRuntime()
	b.cleanupNodeRuntimes()
	if _, err := os.Stat(filepath.Join(b.containerdDir(), "config.toml")); err == nil {
		if b.Containerd == nil || b.Containerd.Exited() {
			killRecorded(b.Dir, "containerd")
			if err := b.StartContainerd(); err != nil {
				b.opts.Log("testbed: could not start old containerd for cleanup: %v", err)
			}
		}
		if b.Containerd != nil && !b.Containerd.Exited() {
			b.removeAllSandboxes()
			_ = b.Containerd.Stop(20 * time.Second)
		}
	}
	if _, err := os.Stat(b.crioConfig()); err == nil {
		b.cleanupCRIO()
	}
	// Shims of tasks containerd did not delete before it stopped outlive it; they name
	// this bed's socket, so they are this bed's to stop.
	killShimsOf(filepath.Join(b.containerdDir(), "containerd.sock"))
	killRecorded(b.Dir)
	// Pods the runtime could not stop (it died or hung first) outlive their shims; they
	// sit in the bed's cgroup root, and only a kill lets those cgroups go.
	if n := KillCgroupEverywhere(b.cgroupRootBase()); n > 0 {
		b.opts.Log("testbed: killed %d processes the runtime left in /%s", n, b.cgroupRootBase())
	}
	// Their tasks' sockets, runc state and network namespaces are outside the bed's folder.
	if n := removeTaskLeftovers(b.taskBundles(), hostDirs); n > 0 {
		b.opts.Log("testbed: removed %d shim sockets, runc states and network namespaces of tasks the runtime did not delete", n)
	}
	removeEmptySharedRuntimeDirs()
	if err := removeSharedCNIChains(); err != nil {
		b.opts.Log("testbed: %v", err)
	}
	if err := RemoveCgroupEverywhere(b.cgroupRootBase()); err != nil {
		b.opts.Log("testbed: %v", err)
	}
	unmountUnder(b.Dir)
	b.releaseNodeIP()
	_ = os.RemoveAll(b.Dir)
	b.removeGuard()
	deleteLink(b.opts.Bridge)
}

// Down tears down a bed left running by `up`, from its options alone.
func Down(opts Options) {
	b := &Bed{opts: withDefaults(opts), Dir: withDefaults(opts).Dir}
	b.cleanup()
}

// Logs returns the tail of every component's log, for a failing test to print.
func (b *Bed) Logs(lines int) string {
	var sb strings.Builder
	entries, _ := os.ReadDir(filepath.Join(b.Dir, "logs"))
	for _, e := range entries {
		fmt.Fprintf(&sb, "----- %s (last %d lines)\n%s\n", e.Name(), lines, TailFile(filepath.Join(b.Dir, "logs", e.Name()), lines))
	}
	return sb.String()
}

// Opts returns the options the bed runs with.
func (b *Bed) Opts() Options { return b.opts }
