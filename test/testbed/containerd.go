package testbed

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// CNIBinDir is where Debian's containernetworking-plugins installs the plugins.
const CNIBinDir = "/usr/lib/cni"

// PauseImage is the sandbox image containerd is told to use; the test bed builds it.
const PauseImage = "registry.k8s.io/pause:3.10"

// registry hosts containerd might be asked for; each is pointed at a closed local port so
// that a pull of an unknown image fails here at once instead of trying to leave the machine.
// PublicRegistries are the registry hosts a pull could name; the bed points each at a
// local endpoint so that nothing is pulled from outside.
var PublicRegistries = []string{"_default", "docker.io", "registry-1.docker.io", "registry.k8s.io", "k8s.gcr.io", "gcr.io", "quay.io", "ghcr.io", "mcr.microsoft.com", "public.ecr.aws"}

func (b *Bed) containerdDir() string { return filepath.Join(b.Dir, "containerd") }

// ContainerdSocket is the CRI endpoint of the test bed's containerd.
func (b *Bed) ContainerdSocket() string { return filepath.Join(b.containerdDir(), "containerd.sock") }

// CRIEndpoint is ContainerdSocket as a unix:// URL.
func (b *Bed) CRIEndpoint() string { return "unix://" + b.ContainerdSocket() }

func (b *Bed) writeContainerdConfig() error {
	d := b.containerdDir()
	for _, sub := range []string{"root", "state", "net.d", "certs.d", "cni-data", "opt"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			return err
		}
	}
	if err := b.writeContainerdConfigFile(d, b.ContainerdSocket(), false); err != nil {
		return err
	}
	for _, host := range PublicRegistries {
		if err := b.writeRegistryHost(host, "http://127.0.0.1:1"); err != nil {
			return err
		}
	}
	return b.writeCNIConfig()
}

// writeContainerdConfigFile writes dir/config.toml for a containerd with its root, state
// and socket in dir, the bed's CNI network and registry hosts, and runc using systemd
// cgroups or cgroupfs.
func (b *Bed) writeContainerdConfigFile(dir, socket string, systemdCgroup bool) error {
	main := b.containerdDir()
	if b.containerdBinDir() != "" && !systemdCgroup { // the systemd runtime is Debian's
		cfg := containerd2Config(b.containerdBinDir(), filepath.Join(dir, "root"), filepath.Join(dir, "state"), socket, filepath.Join(dir, "opt"),
			systemdCgroup, filepath.Join(main, "net.d"), filepath.Join(main, "certs.d"))
		return os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o644)
	}
	cfg := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = %[5]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[6]q
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = %[10]t
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[7]q
    conf_dir = %[8]q
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %[9]q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), socket, socket+".ttrpc",
		filepath.Join(dir, "opt"), PauseImage, CNIBinDir, filepath.Join(main, "net.d"), filepath.Join(main, "certs.d"), systemdCgroup)
	return os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o644)
}

// writeRegistryHost points containerd's pulls of host at server (plain HTTP).
func (b *Bed) writeRegistryHost(host, server string) error {
	dir := filepath.Join(b.containerdDir(), "certs.d", host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(RegistryHostTOML(server)), 0o644)
}

// RegistryHostTOML is a containerd hosts.toml sending a registry's pulls to server.
func RegistryHostTOML(server string) string {
	return fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n  skip_verify = true\n", server, server)
}

// writeCNIConfig: a bridge the project owns, no default route for pods, no masquerade,
// addresses from a private subnet that is routed only to that bridge.
func (b *Bed) writeCNIConfig() error {
	_, subnet, err := net.ParseCIDR(b.opts.PodSubnet)
	if err != nil {
		return fmt.Errorf("pod subnet %q: %w", b.opts.PodSubnet, err)
	}
	conf := fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": "minikubelet-%[1]s",
  "plugins": [
    {
      "type": "bridge",
      "bridge": %[2]q,
      "isGateway": true,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": %[3]q,
        "ranges": [[{"subnet": %[4]q}]]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, b.opts.Name, b.opts.Bridge, filepath.Join(b.containerdDir(), "cni-data"), subnet.String())
	return os.WriteFile(filepath.Join(b.containerdDir(), "net.d", "10-minikubelet.conflist"), []byte(conf), 0o644)
}

// guardRules keep every packet from the pod bridge on it: nothing is forwarded between the
// bridge and any other interface.
func (b *Bed) guardRules() [][]string {
	br := b.opts.Bridge
	return [][]string{
		{"FORWARD", "-i", br, "!", "-o", br, "-j", "DROP"},
		{"FORWARD", "-o", br, "!", "-i", br, "-j", "DROP"},
	}
}

func (b *Bed) installGuard() error { return InsertRules(b.guardRules()) }

func (b *Bed) removeGuard() { DeleteRules(b.guardRules()) }

// InsertRules inserts each iptables rule (chain first) at the top of its chain, in order
// (so the last comes first), unless it is there already.
func InsertRules(rules [][]string) error {
	for _, r := range rules {
		if exec.Command("iptables", append([]string{"-C"}, r...)...).Run() == nil {
			continue
		}
		if out, err := exec.Command("iptables", append([]string{"-I"}, r...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("iptables guard: %v: %s", err, out)
		}
	}
	return nil
}

// DeleteRules deletes every copy of each rule.
func DeleteRules(rules [][]string) {
	for _, r := range rules {
		for exec.Command("iptables", append([]string{"-D"}, r...)...).Run() == nil {
		}
	}
}

// StartContainerd starts (or restarts) the test bed's runtime (containerd, or crio on a
// CRI-O bed) and waits for CRI.
func (b *Bed) StartContainerd() error {
	if b.opts.Runtime == RuntimeCRIO {
		return b.startCRIO()
	}
	p, err := b.startContainerdProc("containerd", filepath.Join(b.containerdDir(), "config.toml"))
	if err != nil {
		return err
	}
	b.Containerd = p
	return waitCRI(b.CRIEndpoint(), p)
}

// waitCRI waits until the runtime p started answers CRI at endpoint (or p exits).
func waitCRI(endpoint string, p *Proc) error {
	rt, err := cri.Dial(endpoint, "")
	if err != nil {
		return err
	}
	defer rt.Close()
	return waitFor(60*time.Second, p, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := rt.Version(ctx)
		return err
	})
}

// StopContainerd stops the runtime only; running containers survive (their shims, or
// CRI-O's conmons, go on).
func (b *Bed) StopContainerd() error { return b.Containerd.Stop(20 * time.Second) }

// removeAllSandboxes tears down every pod in containerd through CRI, so network
// namespaces, IPs and mounts are released before containerd stops.
func (b *Bed) removeAllSandboxes() { removeAllSandboxes(b.CRIEndpoint()) }

func removeAllSandboxes(endpoint string) {
	rt, _, closeCRI, err := CRIClients(endpoint)
	if err != nil {
		return
	}
	defer closeCRI()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return
	}
	for _, s := range resp.Items {
		_, _ = rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: s.Id})
		_, _ = rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: s.Id})
	}
}

// sharedRuntimeDirs are made by any containerd whatever its state dir: its shims' sockets
// (/run/containerd/s) and runc's root for the CRI namespace. Deepest first.
var sharedRuntimeDirs = []string{"/run/containerd/runc/k8s.io", "/run/containerd/runc", "/run/containerd/s", "/run/containerd"}

// removeEmptySharedRuntimeDirs removes those of sharedRuntimeDirs that are empty once a
// bed's runtime has stopped, and only when no runtime runs on the machine (another
// bed's could be about to bind a shim socket there); a runtime that starts later makes
// them again.
func removeEmptySharedRuntimeDirs() {
	if runtimeRunning() {
		return
	}
	for _, d := range sharedRuntimeDirs {
		_ = os.Remove(d) // fails, and keeps d, unless d is empty
	}
}

// runtimeRunning says whether any runtime process runs on the machine: containerd, its
// shims, CRI-O or its conmons (zombies, already dead, do not count).
func runtimeRunning() bool {
	comms, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, f := range comms {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		comm := strings.TrimSpace(string(b))
		if !strings.HasPrefix(comm, "containerd") && comm != "crio" && comm != "conmon" {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil && Running(pid) {
			return true
		}
	}
	return false
}

// unmountUnder lazily unmounts everything mounted below dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var targets []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			targets = append(targets, f[1])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(targets)))
	for _, t := range targets {
		_ = syscall.Unmount(t, syscall.MNT_DETACH)
	}
}

func deleteLink(name string) {
	_ = exec.Command("ip", "link", "del", name).Run()
}
