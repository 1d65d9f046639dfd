package testbed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
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
	if err := RemoveCgroupEverywhere(b.systemdCgroup()); err != nil {
		b.opts.Log("testbed: %v", err)
	}
	b.Systemd = nil
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
