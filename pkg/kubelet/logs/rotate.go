// Package logs keeps container log files bounded, as upstream's container log manager: a
// running container's log that grew past maxSize is renamed to <log>.<timestamp>, the
// runtime is asked to reopen it, older rotated files are gzip-compressed, and at most
// maxFiles files (the live one included) are kept.
package logs

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"k8s.io/klog/v2"
)

// Runtime is what rotation needs from the container runtime.
type Runtime interface {
	// RunningLogs returns the log file of every running container, by container ID.
	RunningLogs(ctx context.Context) (map[string]string, error)
	ReopenContainerLog(ctx context.Context, containerID string) error
}

// Config sets the limits (upstream's containerLogMaxSize, containerLogMaxFiles and
// containerLogMonitorInterval).
type Config struct {
	MaxSize  int64
	MaxFiles int
	Interval time.Duration
	Now      func() time.Time
	// SymlinkDir (with the PodLogsDir the links point into): dangling links of removed
	// containers are swept there each round, as upstream's container GC does.
	SymlinkDir, PodLogsDir string
}

// Manager rotates logs of running containers.
type Manager struct {
	rt  Runtime
	cfg Config
}

const timestampFormat = "20060102-150405"

// New checks cfg: at least 2 files (the live one and one rotated) and a positive size.
func New(rt Runtime, cfg Config) (*Manager, error) {
	if cfg.MaxFiles < 2 {
		return nil, fmt.Errorf("containerLogMaxFiles (--container-log-max-files) must be at least 2, got %d", cfg.MaxFiles)
	}
	if cfg.MaxSize <= 0 {
		return nil, fmt.Errorf("containerLogMaxSize (--container-log-max-size) must be positive, got %d", cfg.MaxSize)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Manager{rt: rt, cfg: cfg}, nil
}

// Run rotates every Interval until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.RotateAll(ctx)
		}
	}
}

// RotateAll checks each running container's log once.
func (m *Manager) RotateAll(ctx context.Context) {
	logger := klog.FromContext(ctx)
	logs, err := m.rt.RunningLogs(ctx)
	if err != nil {
		logger.Error(err, "Listing container logs failed")
		return
	}
	live := make(map[string]bool, len(logs))
	for id, path := range logs {
		live[id] = true
		if err := m.rotate(ctx, id, path); err != nil {
			logger.Error(err, "Rotating container log failed", "containerID", id, "path", path)
		}
	}
	if m.cfg.SymlinkDir != "" {
		if err := SweepDangling(m.cfg.SymlinkDir, m.cfg.PodLogsDir, live); err != nil {
			logger.Error(err, "Removing dead container log symlinks failed", "dir", m.cfg.SymlinkDir)
		}
	}
}

func (m *Manager) rotate(ctx context.Context, id, path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Size() < m.cfg.MaxSize {
		return nil
	}
	// Make room first: after this rotation, live + rotated must stay within MaxFiles.
	rotated, err := rotatedFiles(path)
	if err != nil {
		return err
	}
	for len(rotated) > m.cfg.MaxFiles-2 {
		if err := os.Remove(rotated[0]); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		rotated = rotated[1:]
	}
	for _, r := range rotated {
		if !strings.HasSuffix(r, ".gz") {
			if err := compress(r); err != nil {
				return err
			}
		}
	}
	target := path + "." + m.cfg.Now().Format(timestampFormat)
	if _, err := os.Stat(target); err == nil {
		return nil // rotated within this second already
	}
	if err := os.Rename(path, target); err != nil {
		return err
	}
	if err := m.rt.ReopenContainerLog(ctx, id); err != nil {
		// The runtime still writes to the renamed file: put it back.
		if rerr := os.Rename(target, path); rerr != nil {
			return fmt.Errorf("reopen: %w; and renaming back failed: %v", err, rerr)
		}
		return fmt.Errorf("reopen: %w", err)
	}
	return nil
}

// rotatedFiles lists path's rotated files, oldest first (timestamps sort as text).
func rotatedFiles(path string) ([]string, error) {
	matches, err := filepath.Glob(path + ".*")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range matches {
		if !strings.HasSuffix(f, ".tmp") {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out, nil
}

// compress gzips f to f.gz (through a temporary file) and removes f.
func compress(f string) error {
	in, err := os.Open(f)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := f + ".gz.tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(out)
	_, err = io.Copy(zw, in)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, f+".gz"); err != nil {
		return err
	}
	return os.Remove(f)
}
