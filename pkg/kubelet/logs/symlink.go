package logs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DefaultSymlinkDir is where log shippers (fluent-bit, Vector, Promtail) look for container
// logs: one symlink per container instance pointing at its file under podLogsDir.
const DefaultSymlinkDir = "/var/log/containers"

// maxFileName is ext4's limit on a file name; upstream cuts the link's name to it.
const maxFileName = 255

// SymlinkPath is upstream's name for a container's link:
// <dir>/<pod>_<namespace>_<container>-<containerID>.log, cut to 255 characters.
func SymlinkPath(dir, pod, namespace, container, containerID string) string {
	name := fmt.Sprintf("%s_%s_%s-%s", pod, namespace, container, containerID)
	if len(name) > maxFileName-len(".log") {
		name = name[:maxFileName-len(".log")]
	}
	return filepath.Join(dir, name+".log")
}

// Link points a container's symlink at its log file. As upstream, no link is made when
// the file does not exist (a dangling link would only wait for the sweep).
func Link(dir, pod, namespace, container, containerID, logFile string) error {
	if _, err := os.Stat(logFile); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	link := SymlinkPath(dir, pod, namespace, container, containerID)
	if err := os.Symlink(logFile, link); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// Unlink removes a container's symlink, when the container is removed.
func Unlink(dir, pod, namespace, container, containerID string) error {
	err := os.Remove(SymlinkPath(dir, pod, namespace, container, containerID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// SweepDangling removes links in dir whose log file is gone (a container removed while
// the kubelet was down, or a pod's log folder removed with its sandboxes), except those
// of containers still in live (running containers' IDs), as upstream's container GC.
// Only symlinks whose target lies under podLogsDir are touched: other files in the folder
// are not the kubelet's.
func SweepDangling(dir, podLogsDir string, live map[string]bool) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if e.Type()&fs.ModeSymlink == 0 || !strings.HasSuffix(e.Name(), ".log") {
			continue
		}
		link := filepath.Join(dir, e.Name())
		target, err := os.Readlink(link)
		if err != nil || !within(podLogsDir, target) {
			continue
		}
		if _, err := os.Stat(link); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if live[linkContainerID(e.Name())] {
			continue
		}
		if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// linkContainerID is the container ID in a link's name: after the last "-", before ".log".
func linkContainerID(name string) string {
	name = strings.TrimSuffix(name, ".log")
	return name[strings.LastIndex(name, "-")+1:]
}

func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && !strings.HasPrefix(rel, "..")
}
