package testbed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
)

// A node with the systemd cgroup driver needs a containerd whose runc makes systemd
// scopes, and so a systemd; this machine has none running (PID 1 is not systemd). The
// bed starts one on demand, contained:
//
//	sh (moves itself into the cgroup mkbed-<bed>-systemd of every hierarchy)
//	 └ unshare --pid --mount --cgroup --net --uts --kill-child
//	    └ systemd (PID 1 there; cgroup namespace rooted at mkbed-<bed>-systemd, which is
//	      also bind-mounted over /sys/fs/cgroup/<hierarchy>; its own /proc; /run is
//	      <bed>/systemd/run; one empty target as its whole unit set; a network
//	      namespace with only loopback, so nothing it might start reaches anything)
//	nsenter -t <systemd> --mount --cgroup --pid: containerd with SystemdCgroup = true, in
//	      systemd's PID, mount and cgroup namespaces (runc hands systemd PIDs and reads
//	      its cgroups) but the host's network (pods are on the bed's bridge)
//
// A node agent with the systemd cgroup driver runs there too (StartMinikubeletInSystemd:
// nsenter into the same namespaces), so that the cgroup library finds that systemd at
// /run/systemd/private and its cgroups where a node's kubelet finds its node's. Killing
// the unshare ends the whole namespace and everything in it; the cgroups are removed
// after.

// enterSystemd is nsenter's arguments to run argv in the mount, cgroup and PID namespaces
// of the systemd with PID pid1 (the host's network stays).
func enterSystemd(pid1 int, argv ...string) []string {
	return append([]string{"-t", strconv.Itoa(pid1), "--mount", "--cgroup", "--pid", "--"}, argv...)
}

// SystemdRuntime is the bed's systemd and the containerd that uses it.
type SystemdRuntime struct {
	Systemd    *Proc
	Containerd *Proc
	// Endpoint is the CRI endpoint (unix://...).
	Endpoint string
	// CgroupDir is the systemd's cgroup root in the memory hierarchy on the host.
	CgroupDir string
	// Pid1 is the systemd's PID as the machine sees it.
	Pid1 int
}

func (b *Bed) systemdDir() string    { return filepath.Join(b.Dir, "systemd") }
func (b *Bed) systemdCgroup() string { return "mkbed-" + b.opts.Name + "-systemd" }

// StartSystemdRuntime starts the bed's systemd and its containerd (once; later calls
// return the running one) with the bed's images imported.
func (b *Bed) StartSystemdRuntime() (*SystemdRuntime, error) {
	if b.Systemd != nil {
		return b.Systemd, nil
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		return nil, err
	}
	if _, err := os.Stat("/lib/systemd/systemd"); err != nil {
		return nil, fmt.Errorf("systemd is not installed (apt-get install systemd): %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			b.stopSystemdRuntime()
		}
	}()
	dir := b.systemdDir()
	run := filepath.Join(dir, "run")
	_ = os.RemoveAll(run) // an earlier run's socket would pass for this systemd's
	for _, d := range []string{run, filepath.Join(dir, "containerd", "root"), filepath.Join(dir, "containerd", "state"), filepath.Join(dir, "containerd", "opt")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	procs, err := MakeCgroup(b.systemdCgroup())
	if err != nil {
		return nil, err
	}
	// The unit set: one empty target. Clients of systemd's private bus run in its PID
	// namespace: from outside, their peer credentials carry no PID there, and systemd
	// refuses the EXTERNAL login.
	units := filepath.Join(dir, "units")
	if err := os.MkdirAll(units, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(units, "mkbed.target"), []byte("[Unit]\nDescription=minikubelet test bed: nothing but this\n"), 0o644); err != nil {
		return nil, err
	}
	console := filepath.Join(b.Dir, "logs", "systemd-console.log")
	if err := os.MkdirAll(filepath.Dir(console), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(console, nil, 0o644); err != nil {
		return nil, err
	}
	boot := filepath.Join(dir, "boot.sh")
	if err := os.WriteFile(boot, []byte(fmt.Sprintf(`set -e
mount --make-rprivate /
for h in /sys/fs/cgroup/*/; do h=${h%%/}; [ -d "$h/%[1]s" ] && mount --bind "$h/%[1]s" "$h"; done
mount -t proc proc /proc
mount --bind %[2]q /run
mount --bind %[3]q /dev/console
mkdir -p /run/systemd/system
cp %[4]s/* /run/systemd/system/
exec env container=minikubelet-testbed /lib/systemd/systemd --system --unit=mkbed.target --log-target=console --log-level=notice
`, b.systemdCgroup(), run, console, units)), 0o755); err != nil {
		return nil, err
	}
	// The bed's folder in the command line marks the processes as the bed's (killRecorded).
	wrapper := `for f in $MKBED_CGROUP_PROCS; do echo $$ > "$f"; done; exec unshare --pid --fork --kill-child --mount --cgroup --net --uts /bin/sh "$0"`
	sd, err := b.start("systemd", "/bin/sh", []string{"-c", wrapper, boot}, []string{"MKBED_CGROUP_PROCS=" + strings.Join(procs, " ")})
	if err != nil {
		return nil, err
	}
	rtm := &SystemdRuntime{Systemd: sd, CgroupDir: filepath.Join("/sys/fs/cgroup/memory", b.systemdCgroup())}
	b.Systemd = rtm
	var pid1 int
	if err := waitFor(30*time.Second, sd, func() error {
		if pid1 = ChildOf(sd.Pid()); pid1 == 0 {
			return errors.New("systemd not started")
		}
		_, err := os.Stat(filepath.Join(run, "systemd", "private"))
		return err
	}); err != nil {
		return nil, fmt.Errorf("systemd: %w\n%s", err, TailFile(console, 20))
	}
	rtm.Pid1 = pid1

	cd := filepath.Join(dir, "containerd")
	socket := filepath.Join(cd, "containerd.sock")
	if err := b.writeContainerdConfigFile(cd, socket, true); err != nil {
		return nil, err
	}
	c, err := b.start("containerd-systemd", "nsenter", enterSystemd(pid1, "containerd", "--config", filepath.Join(cd, "config.toml")), nil)
	if err != nil {
		return nil, err
	}
	rtm.Containerd, rtm.Endpoint = c, "unix://"+socket
	if err := waitCRI(rtm.Endpoint, c); err != nil {
		return nil, fmt.Errorf("containerd with systemd cgroups: %w", err)
	}
	if err := b.importImages(socket, b.Images); err != nil {
		return nil, err
	}
	ok = true
	return rtm, nil
}

// stopSystemdRuntime tears down the systemd runtime of this bed (or of a dead earlier
// run): pods through CRI, then the namespace (with the agents in it) and the cgroups.
func (b *Bed) stopSystemdRuntime() {
	socket := filepath.Join(b.systemdDir(), "containerd", "containerd.sock")
	if b.Systemd != nil && b.Systemd.Containerd != nil && !b.Systemd.Containerd.Exited() {
		removeAllSandboxes("unix://" + socket)
	}
	killRecorded(b.Dir, "containerd-systemd", "systemd")
	RemoveCgroupEverywhere(b.systemdCgroup())
	b.Systemd = nil
}

// MakeCgroup makes the cgroup name in every hierarchy (a cpuset one with its parent's CPUs
// and memory nodes, without which it takes no task) and returns their cgroup.procs files,
// for a process to move itself into.
func MakeCgroup(name string) ([]string, error) {
	var procs []string
	for _, h := range CgroupHierarchies() {
		if err := MakeCgroupIn(h, name, 0); err != nil {
			return nil, err
		}
		procs = append(procs, filepath.Join(h, name, "cgroup.procs"))
	}
	return procs, nil
}

// MakeCgroupIn creates the cgroup path rel and its missing parents in hierarchy h: a new
// cpuset level gets its parent's CPUs and memory nodes (it starts with none); shares > 0
// sets rel's cpu.shares where h is the v1 cpu controller's ("cpu" or "cpu,cpuacct").
func MakeCgroupIn(h, rel string, shares uint64) error {
	dir := h
	for _, part := range strings.Split(strings.Trim(rel, "/"), "/") {
		dir = filepath.Join(dir, part)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		if filepath.Base(h) != "cpuset" {
			continue
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			cur, _ := os.ReadFile(filepath.Join(dir, f))
			if strings.TrimSpace(string(cur)) != "" {
				continue
			}
			v, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
				return fmt.Errorf("%s/%s: %w", dir, f, err)
			}
		}
	}
	if shares > 0 && slices.Contains(strings.Split(filepath.Base(h), ","), "cpu") {
		if err := os.WriteFile(filepath.Join(dir, "cpu.shares"), []byte(strconv.FormatUint(shares, 10)), 0o644); err != nil {
			return fmt.Errorf("%s/cpu.shares: %w", dir, err)
		}
	}
	return nil
}

// CgroupHierarchies are the mounted cgroup hierarchies (v1 controllers, name=systemd,
// the unified one).
func CgroupHierarchies() []string {
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	var out []string
	for _, e := range entries {
		p := filepath.Join("/sys/fs/cgroup", e.Name())
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() && isMountPoint(p) {
			out = append(out, p)
		}
	}
	return out
}

// RemoveCgroupEverywhere removes the cgroup name and its descendants in every hierarchy.
func RemoveCgroupEverywhere(name string) {
	for _, h := range CgroupHierarchies() {
		RemoveCgroupTree(filepath.Join(h, name))
	}
}

// RemoveCgroupTree removes a cgroup and its descendants, deepest first; a cgroup whose
// last process is still exiting is retried for a few seconds.
func RemoveCgroupTree(root string) {
	var dirs []string
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.Reverse(dirs)
	for _, d := range dirs {
		for deadline := time.Now().Add(5 * time.Second); os.Remove(d) != nil && time.Now().Before(deadline); {
			if _, err := os.Stat(d); err != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// isMountPoint says whether path is a mount point.
func isMountPoint(path string) bool {
	mounts, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(path))
	return err == nil && len(mounts) > 0
}

// ChildOf is the first child of pid (0 if none yet).
func ChildOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}
