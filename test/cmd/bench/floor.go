package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/kubelet/cm"
	"github.com/minikubelet/minikubelet/test/testbed"
)

// The CRI floor: what the runtime alone takes to start busybox `sleep 3600` pods, with the
// configs minikubelet's translation (pkg/cri) makes and no kubelet running. Each pod is
// what both agents ask of the runtime for such a pod: the cgroup they give a BestEffort
// pod under cgroupRoot (<root>/kubepods/besteffort/pod<uid>, made beforehand with the
// minimum CPU shares there and on the QoS cgroup), and the container's /etc/hosts and
// /dev/termination-log bind mounts. No agent can start pods faster, so the floor is what
// the agents' shares are measured above.

// FloorSample is one sandbox + container start straight through CRI (seconds).
type FloorSample struct {
	RunSandbox      float64 `json:"run_sandbox_s"`
	CreateContainer float64 `json:"create_container_s"`
	StartContainer  float64 `json:"start_container_s"`
	Total           float64 `json:"total_s"`
}

// BatchFloor is a batch of pods started at once straight through CRI: first call → the
// last StartContainer returned, and the machine's CPU time meanwhile by process group.
type BatchFloor struct {
	Pods       int                `json:"pods"`
	AllStarted float64            `json:"all_started_s"`
	CPU        map[string]float64 `json:"cpu_s,omitempty"`
}

// floorRun holds what every floor pod shares: the raw CRI client (the calls as a kubelet
// makes them, nothing of pkg/cri around), the image and the cgroup root.
type floorRun struct {
	rs         runtimeapi.RuntimeServiceClient
	imageRef   string
	logsDir    string
	podsDir    string // the pods' hosts and termination-log files
	cgroupRoot string
}

// besteffort is the QoS cgroup of BestEffort pods under root.
func besteffort(root string) string { return path.Join(root, "kubepods", "besteffort") }

func newFloorRun(ctx context.Context, bed *testbed.Bed, rt *cri.Client, cgroupRoot string) (*floorRun, func() error, error) {
	imageRef, err := rt.ImageRef(ctx, testbed.BusyboxImage)
	if err != nil || imageRef == "" {
		return nil, nil, fmt.Errorf("busybox image in the runtime: %q %v", imageRef, err)
	}
	// The node-level cgroup with the node's CPU as its shares (no reservations on the bed),
	// the BestEffort QoS cgroup with the least.
	if err := testbed.MakeCgroupEverywhere(path.Join(cgroupRoot, "kubepods"), cm.MilliCPUToShares(int64(runtime.NumCPU())*1000)); err != nil {
		return nil, nil, err
	}
	if err := testbed.MakeCgroupEverywhere(besteffort(cgroupRoot), cm.MinShares); err != nil {
		return nil, nil, err
	}
	rs, _, closeCRI, err := testbed.CRIClients(bed.CRIEndpoint())
	if err != nil {
		return nil, nil, err
	}
	dir := filepath.Join(bed.Dir, "bench-floor")
	fr := &floorRun{rs: rs, imageRef: imageRef, logsDir: filepath.Join(dir, "pod-logs"), podsDir: filepath.Join(dir, "pods"), cgroupRoot: cgroupRoot}
	return fr, func() error { _ = os.RemoveAll(dir); return closeCRI() }, nil
}

// prepare makes what an agent makes for the pod before its sandbox: the pod cgroup and
// the files the container's bind mounts show.
func (fr *floorRun) prepare(pod *v1.Pod, c *runtimeapi.ContainerConfig) error {
	if err := testbed.MakeCgroupEverywhere(path.Join(besteffort(fr.cgroupRoot), "pod"+string(pod.UID)), cm.MinShares); err != nil {
		return err
	}
	dir := filepath.Join(fr.podsDir, string(pod.UID))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	hosts, term := filepath.Join(dir, "etc-hosts"), filepath.Join(dir, "0-termination-log")
	if err := os.WriteFile(hosts, []byte("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(term, nil, 0o666); err != nil {
		return err
	}
	c.Mounts = append(c.Mounts, &runtimeapi.Mount{ContainerPath: "/dev/termination-log", HostPath: term},
		&runtimeapi.Mount{ContainerPath: "/etc/hosts", HostPath: hosts})
	return nil
}

// start starts pod floor-<name>: RunPodSandbox, CreateContainer, StartContainer.
func (fr *floorRun) start(ctx context.Context, name string) (FloorSample, error) {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "floor-" + name, Namespace: "bench-floor", UID: types.UID(uuid.NewUUID())},
		Spec: v1.PodSpec{Containers: []v1.Container{{
			Name: "main", Image: testbed.BusyboxImage, Command: []string{"sleep", "3600"},
			TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: v1.TerminationMessageReadFile,
		}}},
		Status: v1.PodStatus{QOSClass: v1.PodQOSBestEffort},
	}
	sbCfg, err := cri.SandboxConfig(pod, 0, cri.SandboxOptions{NodeName: "bench-floor", PodLogsDir: fr.logsDir,
		DNS:           &runtimeapi.DNSConfig{Servers: []string{"127.0.0.1"}},
		CgroupsPerQOS: true, CgroupRoot: fr.cgroupRoot, CgroupDriver: cri.CgroupfsDriver})
	if err != nil {
		return FloorSample{}, err
	}
	cCfg, err := cri.ContainerConfig(pod, &pod.Spec.Containers[0], cri.ContainerOptions{NodeName: "bench-floor", ImageRef: fr.imageRef})
	if err != nil {
		return FloorSample{}, err
	}
	if err := os.MkdirAll(filepath.Join(sbCfg.LogDirectory, "main"), 0o755); err != nil {
		return FloorSample{}, err
	}
	if err := fr.prepare(pod, cCfg); err != nil {
		return FloorSample{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	sb, err := fr.rs.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbCfg})
	if err != nil {
		return FloorSample{}, fmt.Errorf("RunPodSandbox %s: %w", pod.Name, err)
	}
	t1 := time.Now()
	ct, err := fr.rs.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: sb.GetPodSandboxId(), Config: cCfg, SandboxConfig: sbCfg})
	if err != nil {
		return FloorSample{}, fmt.Errorf("CreateContainer %s: %w", pod.Name, err)
	}
	t2 := time.Now()
	if _, err = fr.rs.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: ct.GetContainerId()}); err != nil {
		return FloorSample{}, fmt.Errorf("StartContainer %s: %w", pod.Name, err)
	}
	t3 := time.Now()
	return FloorSample{RunSandbox: secs(t1.Sub(t0)), CreateContainer: secs(t2.Sub(t1)), StartContainer: secs(t3.Sub(t2)), Total: secs(t3.Sub(t0))}, nil
}

// floor starts n pods one after another, as step (1) has the agents start theirs: each
// right after the one before it started, all kept until the last one started (the
// runtime's calls grow slower with each running pod, so a floor of pods removed in
// between would leave that growth in the agents' shares). One unmeasured warm-up pod,
// removed again, comes first.
func floor(ctx context.Context, bed *testbed.Bed, rt *cri.Client, n int, cgroupRoot string) ([]FloorSample, error) {
	fr, done, err := newFloorRun(ctx, bed, rt, cgroupRoot)
	if err != nil {
		return nil, err
	}
	defer done()
	if _, err := fr.start(ctx, "warm-up"); err != nil {
		return nil, fmt.Errorf("CRI floor warm-up: %w", err)
	}
	if err := removeSandboxes(ctx, rt, false, time.Minute); err != nil {
		return nil, err
	}
	var out []FloorSample
	for i := range n {
		s, err := fr.start(ctx, fmt.Sprint(i))
		if err != nil {
			return nil, fmt.Errorf("CRI floor sample %d: %w", i, err)
		}
		out = append(out, s)
	}
	return out, removeSandboxes(ctx, rt, false, time.Minute+time.Duration(n)*time.Second)
}

// batchFloor starts n pods at once, one goroutine each as the agents' pod workers do, and
// removes them again.
func batchFloor(ctx context.Context, bed *testbed.Bed, rt *cri.Client, n int, cgroupRoot string) (BatchFloor, error) {
	fr, done, err := newFloorRun(ctx, bed, rt, cgroupRoot)
	if err != nil {
		return BatchFloor{}, err
	}
	defer done()
	cpu0, err := snapshotCPU()
	if err != nil {
		return BatchFloor{}, err
	}
	start := time.Now()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, errs[i] = fr.start(ctx, fmt.Sprintf("b%d-%03d", n, i)) })
	}
	wg.Wait()
	b := BatchFloor{Pods: n, AllStarted: secs(time.Since(start))}
	cpu1, err := snapshotCPU()
	if err == nil {
		b.CPU = cpuSince(cpu0, cpu1)
	}
	if rerr := removeSandboxes(ctx, rt, false, 2*time.Minute); err == nil {
		err = rerr
	}
	for i, e := range errs {
		if e != nil {
			return b, fmt.Errorf("CRI batch floor of %d, pod %d: %w", n, i, e)
		}
	}
	return b, err
}

// ClientFloor is the footprint of test/cmd/clientfloor: a clientset and one informer on a
// node's pods, nothing else; any node agent built on client-go carries at least this.
type ClientFloor struct {
	Footprint
	ImageMiB float64 `json:"image_mib"` // its binary's read-only segments
}

// clientFloor builds and runs test/cmd/clientfloor against the bed's API server, and
// measures it over window once its informer has synced.
func clientFloor(ctx context.Context, bed *testbed.Bed, window time.Duration) (*ClientFloor, error) {
	bin := filepath.Join(bed.Dir, "clientfloor")
	if err := testbed.BuildGo("./test/cmd/clientfloor", bin, ""); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "--kubeconfig", bed.AdminKubeconfig, "--node", "bench-floor")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{}) // closed once the process was reaped
	synced := make(chan bool, 1)
	go func() {
		defer close(exited)
		line, _ := bufio.NewReader(out).ReadString('\n')
		synced <- strings.TrimSpace(line) == "synced"
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
	}()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	// Its stderr is read only once it was reaped (exec's copier writes it until then).
	logs := func() string {
		_ = cmd.Process.Kill()
		<-exited
		return stderr.String()
	}
	select {
	case ok := <-synced:
		if !ok {
			return nil, fmt.Errorf("clientfloor did not sync: %s", logs())
		}
	case <-time.After(time.Minute):
		return nil, fmt.Errorf("clientfloor: no sync within a minute: %s", logs())
	}
	alive := func() error {
		select {
		case <-exited:
			return fmt.Errorf("clientfloor exited: %s", stderr.String())
		default:
			return nil
		}
	}
	f, err := measureFootprint(ctx, cmd.Process.Pid, window, alive)
	if err != nil {
		return nil, fmt.Errorf("clientfloor footprint: %w", err)
	}
	img, err := imageMiB(cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	return &ClientFloor{Footprint: f, ImageMiB: img}, nil
}
