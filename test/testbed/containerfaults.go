package testbed

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerPID is the host PID of a container's main process, from the runtime's verbose
// CRI status (containerd puts it in info.pid). id may carry the "containerd://" prefix
// of a pod's containerID.
func ContainerPID(ctx context.Context, endpoint, id string) (int, error) {
	rt, _, closeCRI, err := CRIClients(endpoint)
	if err != nil {
		return 0, err
	}
	defer closeCRI()
	if _, after, ok := strings.Cut(id, "://"); ok {
		id = after
	}
	if id == "" {
		return 0, fmt.Errorf("no container ID")
	}
	resp, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return 0, fmt.Errorf("container %s: %w", id, err)
	}
	if resp.Status.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return 0, fmt.Errorf("container %s is %s, not running", id, resp.Status.State)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil || info.Pid <= 1 {
		return 0, fmt.Errorf("container %s: no pid in the runtime's verbose status (%v)", id, err)
	}
	return info.Pid, nil
}

// KillContainer SIGKILLs a container's main process, as a crash would: the container
// exits with 137 and its restart policy applies.
func KillContainer(ctx context.Context, endpoint, id string) error {
	pid, err := ContainerPID(ctx, endpoint, id)
	if err != nil {
		return err
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}

// memoryCgroup is the memory-hierarchy cgroup folder of process pid (cgroup v1).
func memoryCgroup(pid int) (string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 && parts[1] == "memory" {
			return filepath.Join("/sys/fs/cgroup/memory", parts[2]), nil
		}
	}
	return "", fmt.Errorf("process %d has no memory cgroup (cgroup v1 memory controller needed)", pid)
}

// OOMContainer makes the kernel OOM-kill a container, which the runtime then reports as
// OOMKilled (exit 137). The container's memory limit is lowered to its current usage plus
// 16 MiB, and a hog process of the bed's own joins the container's memory cgroup and
// writes a file on tmpfs past it (tmpfs pages are charged to the cgroup but are nobody's
// RSS). The kernel kills the process of the cgroup with the highest badness (RSS plus
// oom_score_adj in thousandths of the limit), so the container's processes are made the
// most killable (oom_score_adj 1000, what BestEffort pods have anyway) while the hog keeps
// a lower score and a tiny RSS: the container's processes go first (lowering the hog's
// score instead would need CAP_SYS_RESOURCE, which root may lack). Once the main process
// is gone the hog is stopped and its file removed. Works whatever the container runs.
func OOMContainer(ctx context.Context, endpoint, id string) error {
	pid, err := ContainerPID(ctx, endpoint, id)
	if err != nil {
		return err
	}
	cg, err := memoryCgroup(pid)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("/dev/shm", "mkbed-oom-")
	if err != nil {
		return fmt.Errorf("a tmpfs for the memory hog: %w", err)
	}
	defer os.RemoveAll(tmp) // uncharges the file's pages
	hog := exec.Command("/bin/busybox", "sh", "-c", "read go && exec /bin/busybox dd if=/dev/zero of="+filepath.Join(tmp, "fill")+" bs=64k")
	hog.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	start, err := hog.StdinPipe()
	if err != nil {
		return err
	}
	if err := hog.Start(); err != nil {
		return fmt.Errorf("memory hog: %w", err)
	}
	defer func() { _ = hog.Process.Kill(); _ = hog.Wait() }()
	if err := oomSetUp(cg, hog.Process.Pid); err != nil {
		return fmt.Errorf("OOM set-up: %w", err)
	}
	if _, err := start.Write([]byte("\n")); err != nil { // the hog starts writing
		return err
	}
	return waitGone(ctx, pid, cg)
}

// oomSetUp makes every process in cgroup cg the most killable, moves the hog in and
// lowers the limit to the cgroup's usage plus 16 MiB.
func oomSetUp(cg string, hog int) error {
	adj, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", hog))
	if err != nil {
		return err
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(string(adj))); n >= 1000 {
		return fmt.Errorf("this process's oom_score_adj is %d: the hog would be killed as soon as the container", n)
	}
	procs, err := os.ReadFile(filepath.Join(cg, "cgroup.procs"))
	if err != nil {
		return err
	}
	for _, p := range strings.Fields(string(procs)) {
		if err := os.WriteFile("/proc/"+p+"/oom_score_adj", []byte("1000"), 0o644); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	usage, err := os.ReadFile(filepath.Join(cg, "memory.usage_in_bytes"))
	if err != nil {
		return err
	}
	u, err := strconv.ParseInt(strings.TrimSpace(string(usage)), 10, 64)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(hog)), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(cg, "memory.limit_in_bytes"), []byte(strconv.FormatInt(u+16<<20, 10)), 0o644)
}

// waitGone waits until process pid has left cgroup cg (it was killed), polling often so
// the hog is stopped before the runtime tries to remove the emptied cgroup.
func waitGone(ctx context.Context, pid int, cg string) error {
	want := strconv.Itoa(pid)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		procs, err := os.ReadFile(filepath.Join(cg, "cgroup.procs"))
		if err != nil || !containsLine(string(procs), want) {
			return nil
		}
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("container process %d was not OOM-killed within 30s", pid)
}

func containsLine(s, line string) bool {
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}
