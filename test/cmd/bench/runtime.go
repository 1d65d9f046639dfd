package main

import (
	"context"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
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

func secs(d time.Duration) float64 { return d.Seconds() }
