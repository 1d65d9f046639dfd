package podworker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	systemddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// SliceStopper stops a systemd slice unit (and so removes its cgroups).
type SliceStopper interface {
	StopSlice(ctx context.Context, unit string) error
}

// PodCgroups makes pod cgroups and updates the QoS cgroups (package cm).
type PodCgroups interface {
	EnsurePod(pod *v1.Pod) error
	UpdateQOS() error
	// ResizePod sets resource name (cpu or memory) of the pod's cgroup to the pod's
	// values (an in-place resize).
	ResizePod(pod *v1.Pod, name v1.ResourceName) error
	// PodLimit is the pod cgroup's limit of name for pod (-1: none).
	PodLimit(pod *v1.Pod, name v1.ResourceName) int64
}

// ensurePodCgroup makes the pod's cgroup before its sandbox, as upstream's SyncPod does,
// with upstream's event when that fails.
func (w *Workers) ensurePodCgroup(pod *v1.Pod) error {
	if !w.cfg.CgroupsPerQOS || w.cfg.Cgroups == nil {
		return nil
	}
	if err := w.cfg.Cgroups.EnsurePod(pod); err != nil {
		w.event(pod, nil, v1.EventTypeWarning, "FailedCreatePodContainer", "unable to ensure pod container exists: %v", err)
		return err
	}
	return nil
}

// ActivePods are the pods whose containers may run: not finished (Succeeded or Failed).
func (w *Workers) ActivePods() []*v1.Pod {
	pods := w.Pods()
	out := pods[:0:0]
	for _, p := range pods {
		if p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
			out = append(out, p)
		}
	}
	return out
}

// removePodCgroups releases the pod's cgroups once its containers are gone: with cgroupfs
// the (now empty) directories runc created under each cgroup v1 hierarchy; with systemd
// the pod's slice, which systemd keeps active after its last scope ended (upstream's
// kubelet stops it too). Failures are logged; the next removal of the pod retries.
func (w *Workers) removePodCgroups(ctx context.Context, pod *v1.Pod) {
	if !w.cfg.CgroupsPerQOS {
		return
	}
	if w.cfg.CgroupDriver == cri.SystemdDriver {
		unit := cri.PodSlice(w.cfg.CgroupRoot, pod)
		if err := w.cfg.Slices.StopSlice(ctx, unit); err != nil {
			klog.FromContext(ctx).Info("Stopping the pod's slice failed", "pod", klog.KObj(pod), "unit", unit, "err", err)
		}
		w.updateQOS(ctx)
		return
	}
	rel := cri.PodCgroupParent(cri.CgroupfsDriver, w.cfg.CgroupRoot, pod)
	hier, _ := os.ReadDir("/sys/fs/cgroup")
	for _, h := range hier {
		_ = removeCgroup(filepath.Join("/sys/fs/cgroup", h.Name(), rel))
	}
	w.updateQOS(ctx)
}

// updateQOS brings the QoS cgroups in step with the pods (a pod left: its requests go).
func (w *Workers) updateQOS(ctx context.Context) {
	if w.cfg.Cgroups == nil {
		return
	}
	if err := w.cfg.Cgroups.UpdateQOS(); err != nil {
		klog.FromContext(ctx).Info("Updating the QoS cgroups failed", "err", err)
	}
}

// removeCgroup removes a cgroupfs directory and the (empty) cgroups below it, deepest
// first, as upstream's cgroup manager does (libcontainer's RemovePath): CRI-O leaves its
// conmon cgroups (crio-conmon-<id>) in the pod's cgroup in some hierarchies.
func removeCgroup(dir string) error {
	if err := os.Remove(dir); err == nil || os.IsNotExist(err) {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroup(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return os.Remove(dir)
}

// SystemdSlices stops slices through systemd's D-Bus API (the system bus, or systemd's
// private socket as root), connecting on first use and again after a failure.
type SystemdSlices struct {
	mu   sync.Mutex
	conn *systemddbus.Conn
}

func (s *SystemdSlices) StopSlice(ctx context.Context, unit string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		c, err := systemddbus.NewWithContext(ctx)
		if err != nil {
			return fmt.Errorf("connecting to systemd: %w", err)
		}
		s.conn = c
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	done := make(chan string, 1)
	if _, err := s.conn.StopUnitContext(ctx, unit, "replace", done); err != nil {
		var derr dbus.Error
		if errors.As(err, &derr) && derr.Name == "org.freedesktop.systemd1.NoSuchUnit" {
			return nil // never created, or already gone
		}
		if !s.conn.Connected() {
			s.conn.Close()
			s.conn = nil
		}
		return err
	}
	select {
	case res := <-done:
		if res != "done" {
			return fmt.Errorf("stopping %s: %s", unit, res)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
