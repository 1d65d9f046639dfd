package cluster

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// bootScript boots a node inside its namespaces (see the script's header).
//
//go:embed boot.sh
var bootScript string

// Node is one machine of the cluster: its own network, mount, PID, UTS, IPC and cgroup
// namespaces with systemd as PID 1, as a kind node container is.
type Node struct {
	Name string
	// IP is the node's address on the cluster's bridge.
	IP string
	// ControlPlane: the node kubeadm init runs on.
	ControlPlane bool
	// Upstream: the node's kubelet is the pinned upstream kubelet, not minikubelet.
	Upstream bool

	dir     string // <cluster>/nodes/<name>
	cgroup  string // the node's cgroup in every hierarchy
	unshare *exec.Cmd
	done    chan struct{}
}

// Pid is the node's PID 1 (systemd) as the machine sees it; 0 before it started.
func (n *Node) Pid() int {
	if n.unshare == nil || n.unshare.Process == nil {
		return 0
	}
	return testbed.ChildOf(n.unshare.Process.Pid)
}

// Path is a path inside the node, reachable from the machine.
func (n *Node) Path(p string) string {
	return filepath.Join(fmt.Sprintf("/proc/%d/root", n.Pid()), p)
}

// WriteFile writes a file inside the running node.
func (n *Node) WriteFile(p string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(n.Path(p)), 0o755); err != nil {
		return err
	}
	return os.WriteFile(n.Path(p), data, mode)
}

// seed writes a file into the node's root before it boots.
func (n *Node) seed(p string, data []byte, mode os.FileMode) error {
	full := filepath.Join(n.dir, "upper", p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	return os.WriteFile(full, data, mode)
}

// Command runs a program inside the node, in all its namespaces, as `docker exec` does
// in a kind node.
func (n *Node) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"-t", strconv.Itoa(n.Pid()), "--all", "--", name}, args...)...)
}

// Run runs a program inside the node and returns its combined output.
func (n *Node) Run(name string, args ...string) (string, error) {
	out, err := n.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s %s: %v\n%s", n.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// boot starts the node's namespaces and its systemd, and waits for systemd to run.
func (n *Node) boot() error {
	for _, d := range []string{"upper", "work", "containerd", "rootfs"} {
		if err := os.MkdirAll(filepath.Join(n.dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(n.dir, "console.log"), nil, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(n.dir, "boot.sh"), []byte(bootScript), 0o755); err != nil {
		return err
	}
	procs, err := testbed.MakeCgroup(n.cgroup)
	if err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(n.dir, "boot.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	// The node folder in the command line marks the process as the cluster's (killNode).
	wrapper := `for f in $MKCL_CGROUP_PROCS; do echo $$ > "$f"; done; exec unshare --pid --fork --kill-child --mount --cgroup --net --uts --ipc /bin/sh "$0" "$@"`
	cmd := exec.Command("/bin/sh", "-c", wrapper, filepath.Join(n.dir, "boot.sh"), n.dir, n.cgroup, n.Name)
	cmd.Env = append(os.Environ(), "MKCL_CGROUP_PROCS="+strings.Join(procs, " "))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	n.unshare, n.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(n.done) }()
	if err := os.WriteFile(filepath.Join(n.dir, "pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		return err
	}
	return n.waitFor(30*time.Second, func() error {
		if n.Pid() == 0 {
			return errors.New("no PID 1 yet")
		}
		out, err := n.Command("systemctl", "is-system-running").CombinedOutput()
		if s := strings.TrimSpace(string(out)); s != "running" && s != "degraded" {
			return fmt.Errorf("systemd is %q (%v)", s, err)
		}
		return nil
	})
}

// waitFor polls cond until it holds, the node's namespaces end or timeout passes.
func (n *Node) waitFor(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-n.done:
			return fmt.Errorf("node %s ended: %v\nboot: %s\nconsole: %s", n.Name, err,
				testbed.TailFile(filepath.Join(n.dir, "boot.log"), 20), testbed.TailFile(filepath.Join(n.dir, "console.log"), 20))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s: %v\nconsole: %s", n.Name, err, testbed.TailFile(filepath.Join(n.dir, "console.log"), 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// kill ends the node's namespaces (its PID 1 and so every process in them, mounts with
// them) and removes its cgroups. It works from the pid file too, for a cluster left by
// an earlier run.
func killNode(dir, cgroup string) {
	if b, err := os.ReadFile(filepath.Join(dir, "pid")); err == nil {
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); pid > 1 && err == nil && strings.Contains(string(cmdline), dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			for deadline := time.Now().Add(10 * time.Second); testbed.Running(pid) && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
			}
		}
		_ = os.Remove(filepath.Join(dir, "pid"))
	}
	testbed.RemoveCgroupEverywhere(cgroup)
}
