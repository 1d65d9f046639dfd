package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/test/testbed"
)

// sandboxes lists every pod sandbox in the runtime.
func sandboxes(ctx context.Context, rt *cri.Client) ([]*runtimeapi.PodSandbox, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	items, err := rt.ListSandboxes(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("CRI ListPodSandbox: %w", err)
	}
	return items, nil
}

// removeSandboxes stops and removes sandboxes (all, or only the not-ready ones) and waits
// until none of those is left.
func removeSandboxes(ctx context.Context, rt *cri.Client, onlyStopped bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		items, err := sandboxes(ctx, rt)
		if err != nil {
			return err
		}
		left := 0
		for _, s := range items {
			if onlyStopped && s.State == runtimeapi.PodSandboxState_SANDBOX_READY {
				continue
			}
			left++
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_ = rt.StopSandbox(cctx, s.Id)
			_ = rt.RemoveSandbox(cctx, s.Id)
			cancel()
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("runtime still has %d sandboxes after %v of removing them", left, timeout)
		}
		sleepCtx(ctx, 200*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// waitSandboxesStopped polls the runtime until no sandbox of the given pod UIDs (all
// pods if uids is nil) is ready; it returns when that was first seen.
func waitSandboxesStopped(ctx context.Context, rt *cri.Client, uids map[string]bool, timeout time.Duration, alive func() error) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		items, err := sandboxes(ctx, rt)
		if err != nil {
			return time.Time{}, err
		}
		now := time.Now()
		ready := 0
		for _, s := range items {
			if s.State == runtimeapi.PodSandboxState_SANDBOX_READY && (uids == nil || uids[s.GetMetadata().GetUid()]) {
				ready++
			}
		}
		if ready == 0 {
			return now, nil
		}
		if now.After(deadline) {
			return time.Time{}, fmt.Errorf("timed out after %v: %d sandboxes still ready in the runtime", timeout, ready)
		}
		if err := alive(); err != nil {
			return time.Time{}, err
		}
		sleepCtx(ctx, 50*time.Millisecond)
		if ctx.Err() != nil {
			return time.Time{}, ctx.Err()
		}
	}
}

// FloorSample is one sandbox + container start straight through CRI (seconds).
type FloorSample struct {
	RunSandbox      float64 `json:"run_sandbox_s"`
	CreateContainer float64 `json:"create_container_s"`
	StartContainer  float64 `json:"start_container_s"`
	Total           float64 `json:"total_s"`
}

// floor starts n busybox `sleep 3600` pods straight through CRI, one after another, with
// the configs minikubelet's translation (pkg/cri) makes, and no kubelet running. Each pod
// gets the cgroup parent both agents give a BestEffort pod under cgroupRoot
// (<root>/kubepods/besteffort/pod<uid>; runc creates it). One unmeasured warm-up comes
// first. Each pod is removed before the next starts.
func floor(ctx context.Context, bed *testbed.Bed, rt *cri.Client, n int, cgroupRoot string) ([]FloorSample, error) {
	logsDir := filepath.Join(bed.Dir, "bench-floor", "pod-logs")
	imageRef, err := rt.ImageRef(ctx, testbed.BusyboxImage)
	if err != nil || imageRef == "" {
		return nil, fmt.Errorf("busybox image in the runtime: %q %v", imageRef, err)
	}
	// The raw CRI client: the calls as a kubelet would make them, nothing of pkg/cri around.
	rs, _, closeCRI, err := testbed.CRIClients(bed.CRIEndpoint())
	if err != nil {
		return nil, err
	}
	defer closeCRI()
	var out []FloorSample
	for i := 0; i <= n; i++ {
		pod := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("floor-%d", i), Namespace: "bench-floor", UID: types.UID(uuid.NewUUID())},
			Spec: v1.PodSpec{Containers: []v1.Container{{
				Name: "main", Image: testbed.BusyboxImage, Command: []string{"sleep", "3600"},
				TerminationMessagePath: "/dev/termination-log", TerminationMessagePolicy: v1.TerminationMessageReadFile,
			}}},
			Status: v1.PodStatus{QOSClass: v1.PodQOSBestEffort},
		}
		sbCfg, err := cri.SandboxConfig(pod, 0, cri.SandboxOptions{NodeName: "bench-floor", PodLogsDir: logsDir,
			DNS:           &runtimeapi.DNSConfig{Servers: []string{"127.0.0.1"}},
			CgroupsPerQOS: true, CgroupRoot: cgroupRoot, CgroupDriver: cri.CgroupfsDriver})
		if err != nil {
			return nil, err
		}
		cCfg, err := cri.ContainerConfig(pod, &pod.Spec.Containers[0], cri.ContainerOptions{NodeName: "bench-floor", ImageRef: imageRef})
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Join(sbCfg.LogDirectory, "main"), 0o755); err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		t0 := time.Now()
		sb, err := rs.RunPodSandbox(cctx, &runtimeapi.RunPodSandboxRequest{Config: sbCfg})
		t1 := time.Now()
		var ct *runtimeapi.CreateContainerResponse
		if err == nil {
			ct, err = rs.CreateContainer(cctx, &runtimeapi.CreateContainerRequest{
				PodSandboxId: sb.GetPodSandboxId(), Config: cCfg, SandboxConfig: sbCfg})
		}
		t2 := time.Now()
		if err == nil {
			_, err = rs.StartContainer(cctx, &runtimeapi.StartContainerRequest{ContainerId: ct.GetContainerId()})
		}
		t3 := time.Now()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("CRI floor sample %d: %w", i, err)
		}
		if i > 0 {
			out = append(out, FloorSample{RunSandbox: secs(t1.Sub(t0)), CreateContainer: secs(t2.Sub(t1)),
				StartContainer: secs(t3.Sub(t2)), Total: secs(t3.Sub(t0))})
		}
		if err := removeSandboxes(ctx, rt, false, time.Minute); err != nil {
			return nil, err
		}
	}
	_ = os.RemoveAll(filepath.Dir(logsDir))
	return out, nil
}

func secs(d time.Duration) float64 { return d.Seconds() }
