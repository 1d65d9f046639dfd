package testbed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRI-O on the bed (MINIKUBELET_RUNTIME=crio): crio and pinns built by hack/build-crio.sh,
// Debian's conmon, the runc of the containerd 2.x build if it is there (else Debian's).
// Its config, storage and state are under <bed>/crio; it listens on the bed's CRI socket
// (ContainerdSocket) and uses the bed's CNI network (<bed>/containerd/net.d), so
// CRIEndpoint, the node agents and the faults work as with containerd.
//
// Host ports are not mapped: CRI-O gives them to no CNI plugin (portmap, which serves
// them for containerd, never sees them) but to its own manager, which writes NAT chains
// of the whole machine (KUBE-HOSTPORTS, CRIO-HOSTPORTS-MASQ) that outlive it; the bed
// turns that off (disable_hostport_mapping).
//
// CRI-O has no image import: the bed pushes its images into the bed's registry under
// <registry>/<their own name> and pulls them through CRI; its registries.conf sends each
// of those repositories there and every other repository of a public registry to a closed
// local port; any other host is reached only through a closed local "proxy". CRI-O
// ignores CONTAINERS_REGISTRIES_CONF and reads /etc/containers and /etc/crio unless told
// otherwise, so every path it would read is given on its command line or in its config,
// from the first start: otherwise it asks DNS for docker.io.

// ConmonPath is Debian's conmon (apt), the monitor CRI-O runs beside each container.
const ConmonPath = "/usr/bin/conmon"

func (b *Bed) crioDir() string { return filepath.Join(b.Dir, "crio") }

func (b *Bed) crioConfig() string { return b.crio().config() }

// crioInstance is one crio of the bed: its own (crio) or a node's (NodeRuntime), each
// with its config, storage and state under dir and its CRI socket.
type crioInstance struct {
	dir, socket string
	proc        string // its name among the bed's processes
}

// crio is the bed's own crio, on the bed's CRI socket.
func (b *Bed) crio() crioInstance {
	return crioInstance{dir: b.crioDir(), socket: b.ContainerdSocket(), proc: "crio"}
}

func (c crioInstance) config() string { return filepath.Join(c.dir, "crio.conf") }

func (c crioInstance) endpoint() string { return "unix://" + c.socket }

// crioBinFile records where the bed's crio lives, for a later run cleaning up after this one.
func (b *Bed) crioBinFile() string { return filepath.Join(b.crioDir(), "bin-dir") }

// crioBinDir is the folder of the bed's crio and pinns ("" if never recorded).
func (b *Bed) crioBinDir() string {
	if b.crioBin != "" {
		return b.crioBin
	}
	if d, err := os.ReadFile(b.crioBinFile()); err == nil {
		return strings.TrimSpace(string(d))
	}
	return ""
}

// prepareCRIO builds (or finds cached) crio and pinns and records their folder.
func (b *Bed) prepareCRIO() error {
	if _, err := os.Stat(ConmonPath); err != nil {
		return fmt.Errorf("conmon (apt-get install conmon): %w", err)
	}
	dir, err := runScript("build-crio.sh")
	if err != nil {
		return err
	}
	b.crioBin = dir
	if err := os.MkdirAll(b.crioDir(), 0o755); err != nil {
		return err
	}
	return os.WriteFile(b.crioBinFile(), []byte(dir), 0o644)
}

// crioRunc is the runc CRI-O runs: the one hack/build-containerd2.sh built (v1.5.3, with
// the ID-mapped mounts user namespaces need) if it is in the cache, else Debian's. The
// cache folder is found as the script names it (a hash of the pins and of the script).
func crioRunc() string {
	top := RepoRoot()
	var h = sha256.New()
	for _, f := range []string{"test/tools/containerd2/go.mod", "test/tools/containerd2/go.sum",
		"test/tools/runc/go.mod", "test/tools/runc/go.sum", "hack/build-containerd2.sh"} {
		data, err := os.ReadFile(filepath.Join(top, f))
		if err != nil {
			return "/usr/bin/runc"
		}
		h.Write(data)
	}
	cache := os.Getenv("MINIKUBELET_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			base = filepath.Join(os.Getenv("HOME"), ".cache")
		}
		cache = filepath.Join(base, "minikubelet")
	}
	bin := filepath.Join(cache, "containerd2-"+hex.EncodeToString(h.Sum(nil))[:16], "bin")
	if _, err := os.Stat(filepath.Join(bin, ".complete")); err == nil {
		return filepath.Join(bin, "runc")
	}
	return "/usr/bin/runc"
}

// writeCRIOConfig writes c's crio.conf, registries.conf and signature policy, and makes
// the folders of the bed's CNI network config (written by writeCNIConfig).
func (b *Bed) writeCRIOConfig(c crioInstance) error {
	d := c.dir
	for _, sub := range []string{"root", "runroot", "run/exits", "run/ns", "run/runc", "lib", "logs", "conf.d", "registries.conf.d", "policies"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			return err
		}
	}
	for _, sub := range []string{"net.d", "cni-data"} {
		if err := os.MkdirAll(filepath.Join(b.containerdDir(), sub), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(d, "policy.json"), []byte(`{"default": [{"type": "insecureAcceptAnything"}]}`+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d, "registries.conf"), []byte(b.crioRegistriesConf()), 0o644); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`[crio]
root = %[1]q
runroot = %[2]q
storage_driver = "overlay"
log_dir = %[3]q
version_file = %[4]q
version_file_persist = %[5]q
clean_shutdown_file = %[6]q

[crio.api]
listen = %[7]q
stream_address = "127.0.0.1"
stream_port = "0"

[crio.runtime]
cgroup_manager = "cgroupfs"
default_runtime = "runc"
conmon_cgroup = "pod"
container_exits_dir = %[8]q
container_attach_socket_dir = %[9]q
namespaces_dir = %[10]q
pinns_path = %[11]q
irqbalance_config_file = ""
irqbalance_config_restore_file = "disable"
enable_pod_events = true
hooks_dir = []
disable_hostport_mapping = true

[crio.runtime.runtimes.runc]
runtime_path = %[12]q
runtime_type = "oci"
runtime_root = %[13]q
monitor_path = %[14]q
monitor_cgroup = "pod"

[crio.image]
pause_image = %[15]q
signature_policy = %[16]q
signature_policy_dir = %[17]q

[crio.network]
network_dir = %[18]q
plugin_dirs = [%[19]q]

[crio.metrics]
enable_metrics = false

[crio.nri]
enable_nri = false
`, filepath.Join(d, "root"), filepath.Join(d, "runroot"), filepath.Join(d, "logs"),
		filepath.Join(d, "run", "version"), filepath.Join(d, "lib", "version"), filepath.Join(d, "lib", "clean.shutdown"),
		c.socket, filepath.Join(d, "run", "exits"), filepath.Join(d, "run"), filepath.Join(d, "run", "ns"),
		filepath.Join(b.crioBinDir(), "pinns"), crioRunc(), filepath.Join(d, "run", "runc"), ConmonPath,
		PauseImage, filepath.Join(d, "policy.json"), filepath.Join(d, "policies"),
		filepath.Join(b.containerdDir(), "net.d"), CNIBinDir)
	return os.WriteFile(c.config(), []byte(cfg), 0o644)
}

// crioRegistriesConf sends each repository of the bed's images to the bed's registry
// (pushed there under <registry>/<name>), lets the bed's registry be pulled from over
// plain HTTP, and sends every other repository of a public registry to a closed local
// port (as containerd's hosts.toml do): nothing is ever pulled from outside. No
// short-name search.
func (b *Bed) crioRegistriesConf() string {
	var sb strings.Builder
	sb.WriteString("unqualified-search-registries = []\nshort-name-mode = \"enforcing\"\n")
	entry := func(prefix, location string) {
		if prefix != "" {
			fmt.Fprintf(&sb, "\n[[registry]]\nprefix = %q\nlocation = %q\ninsecure = true\n", prefix, location)
		} else {
			fmt.Fprintf(&sb, "\n[[registry]]\nlocation = %q\ninsecure = true\n", location)
		}
	}
	entry("", b.Registry.Host)
	var repos []string
	for n := range b.Images {
		repos = append(repos, imageRepo(n))
	}
	sort.Strings(repos)
	for _, r := range repos {
		entry(r, b.Registry.Host+"/"+r)
	}
	for _, host := range PublicRegistries {
		if host != "_default" { // containerd's fallback hosts.toml, no registry name
			entry(host, "127.0.0.1:1")
		}
	}
	return sb.String()
}

// imageRepo is a fully qualified image name without its tag or digest.
func imageRepo(n string) string {
	if i := strings.Index(n, "@"); i >= 0 {
		n = n[:i]
	}
	if i := strings.LastIndex(n, ":"); i > strings.LastIndex(n, "/") {
		n = n[:i]
	}
	return n
}

// startCRIOProc starts crio c with every configuration path it would otherwise look for
// in /etc, and waits for CRI.
func (b *Bed) startCRIOProc(c crioInstance) (*Proc, error) {
	d := c.dir
	p, err := b.start(c.proc, filepath.Join(b.crioBinDir(), "crio"), []string{
		"--config", c.config(),
		"--config-dir", filepath.Join(d, "conf.d"),
		"--registries-conf", filepath.Join(d, "registries.conf"),
		"--registries-conf-dir", filepath.Join(d, "registries.conf.d"),
		"--signature-policy", filepath.Join(d, "policy.json"),
		"--log-level", "info",
	}, crioProxyEnv)
	if err != nil {
		return nil, err
	}
	return p, waitCRI(c.endpoint(), p)
}

// crioProxyEnv sends every registry connection of crio to a host that is not loopback
// through a "proxy" on a closed local port, so that a pull of a name its registries.conf
// does not list (it has no catch-all as containerd's _default hosts.toml) fails at once,
// without resolving the name. Go's HTTP client never proxies loopback, so the bed's
// registry is reached directly.
var crioProxyEnv = []string{"HTTP_PROXY=http://127.0.0.1:1", "HTTPS_PROXY=http://127.0.0.1:1", "NO_PROXY=localhost,127.0.0.1"}

// startCRIO starts (or restarts) the bed's crio and waits for CRI.
func (b *Bed) startCRIO() error {
	p, err := b.startCRIOProc(b.crio())
	if p != nil {
		b.Containerd = p
	}
	return err
}

// startCRIOFirst writes CRI-O's config, starts it and gives it the bed's images.
func (b *Bed) startCRIOFirst() error {
	if err := b.writeCRIOConfig(b.crio()); err != nil {
		return err
	}
	if err := b.writeCNIConfig(); err != nil {
		return err
	}
	b.Registry.ChallengePings()
	if err := b.installGuard(); err != nil {
		return err
	}
	if err := b.StartContainerd(); err != nil {
		return err
	}
	return b.PushAndPullImages(b.Images)
}

// PushAndPullImages puts images (by name) into CRI-O: each is pushed to the bed's
// registry under <registry>/<name>, where registries.conf sends pulls of the name, and
// pulled through CRI.
func (b *Bed) PushAndPullImages(imgs map[string]v1.Image) error {
	_, is, closeCRI, err := CRIClients(b.CRIEndpoint())
	if err != nil {
		return err
	}
	defer closeCRI()
	for n, img := range imgs {
		repo, tag := imageRepo(n), strings.TrimPrefix(n[len(imageRepo(n)):], ":")
		if tag == "" {
			tag = "latest"
		}
		if _, err := b.Registry.Push(repo, tag, img); err != nil {
			return err
		}
		if err := pullInto(is, n); err != nil {
			return err
		}
	}
	return nil
}

// pullImages pulls images the bed pushed (PushAndPullImages) into the crio at endpoint.
func pullImages(endpoint string, imgs map[string]v1.Image) error {
	_, is, closeCRI, err := CRIClients(endpoint)
	if err != nil {
		return err
	}
	defer closeCRI()
	for n := range imgs {
		if err := pullInto(is, n); err != nil {
			return err
		}
	}
	return nil
}

func pullInto(is runtimeapi.ImageServiceClient, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := is.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: name}}); err != nil {
		return fmt.Errorf("pull %s into crio: %w", name, err)
	}
	return nil
}

// cleanupCRIO removes what a CRI-O bed left (cleanupCRIOInstance).
func (b *Bed) cleanupCRIO() {
	if b.opts.Runtime != RuntimeCRIO { // an earlier run's crio: b.Containerd is not it
		b.cleanupCRIOInstance(b.crio(), nil)
		return
	}
	b.Containerd = b.cleanupCRIOInstance(b.crio(), b.Containerd)
}

// cleanupCRIOInstance removes what crio c left: every pod through CRI (starting c on its
// old state if p is not running), then c, the conmon processes and containers that
// outlived it, the mounts under its folder and the conmon cgroups of its containers. It
// returns the crio process it ran last.
func (b *Bed) cleanupCRIOInstance(c crioInstance, p *Proc) *Proc {
	ids := crioContainerIDs(c.dir) // before crio removes them
	if p == nil || p.Exited() {
		killRecorded(b.Dir, c.proc)
		if b.crioBinDir() != "" {
			var err error
			if p, err = b.startCRIOProc(c); err != nil {
				b.opts.Log("testbed: could not start old %s for cleanup: %v", c.proc, err)
			}
		}
	}
	if p != nil && !p.Exited() {
		removeAllSandboxes(c.endpoint())
		_ = p.Stop(30 * time.Second)
	}
	killConmonsOf(c.dir)
	// Containers whose conmon is gone and that crio did not remove: runc's state names them.
	runcRoot := filepath.Join(c.dir, "run", "runc")
	if ents, err := os.ReadDir(runcRoot); err == nil {
		runc := crioRunc()
		for _, e := range ents {
			_ = exec.Command(runc, "--root", runcRoot, "delete", "--force", e.Name()).Run()
		}
	}
	unmountUnder(c.dir)
	if left := removeConmonCgroups(ids); len(left) > 0 {
		b.opts.Log("testbed: conmon cgroups still busy: %v", left)
	}
	return p
}

// killConmonsOf SIGKILLs the conmon processes of the CRI-O whose folder is dir (their
// command line names paths in it).
func killConmonsOf(dir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "conmon" || !strings.Contains(string(data), dir+"/") {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// crioContainerIDs are the IDs of the containers (and infra containers) in CRI-O's
// storage under dir.
func crioContainerIDs(dir string) []string {
	var ids []string
	for _, sub := range []string{"root/overlay-containers", "runroot/overlay-containers"} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range ents {
			if e.IsDir() && len(e.Name()) == 64 {
				ids = append(ids, e.Name())
			}
		}
	}
	return ids
}

// removeConmonCgroups removes the crio-conmon-<id> cgroups (cgroupfs driver) CRI-O made
// beside containers and leaves behind in some hierarchies once conmon has exited, then
// the pod cgroups they kept from being removed if nothing else is in them now. Only
// CRI-O makes such cgroups and rmdir refuses one with a process in it, so every dead one
// goes: also those of containers removed before the bed stopped (restarts), whose IDs are
// no longer in its storage. ids (the containers the bed's CRI-O still had) are only
// reported when one of them could not be removed.
func removeConmonCgroups(ids []string) []string {
	ours := map[string]bool{}
	for _, id := range ids {
		ours["crio-conmon-"+id] = true
	}
	var left []string
	hier, _ := os.ReadDir("/sys/fs/cgroup")
	for _, h := range hier {
		root := filepath.Join("/sys/fs/cgroup", h.Name(), "kubepods")
		var found []string
		_ = filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
			if err != nil || !e.IsDir() {
				return nil
			}
			if strings.HasPrefix(e.Name(), "crio-conmon-") {
				found = append(found, p)
				return filepath.SkipDir
			}
			return nil
		})
		for _, p := range found {
			if os.Remove(p) == nil {
				_ = os.Remove(filepath.Dir(p)) // the pod's cgroup, if nothing else is in it
			} else if ours[filepath.Base(p)] {
				left = append(left, p)
			}
		}
	}
	return left
}
