package volume

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// ensureTmpfs mounts a tmpfs on dir unless one is already there (after a restart of
// minikubelet the pod's tmpfs volumes are still mounted). size "" means no limit.
func ensureTmpfs(dir, size string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	mounted, err := mountinfo.Mounted(dir)
	if err != nil {
		return err
	}
	if mounted {
		return nil
	}
	opts := "mode=0755"
	if size != "" {
		opts += ",size=" + size
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return nil
}

// unmountAll unmounts every mount below dir, deepest first.
func unmountAll(dir string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return err
	}
	paths := make([]string, 0, len(mounts))
	for _, m := range mounts {
		paths = append(paths, m.Mountpoint)
	}
	sort.Slice(paths, func(i, j int) bool { return strings.Count(paths[i], "/") > strings.Count(paths[j], "/") })
	for _, p := range paths {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	return nil
}

// bindMount binds src onto dir (read-only when ro) unless something is mounted there
// already (after a restart of minikubelet the pod's binds are still in place).
func bindMount(src, dir string, ro bool) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	mounted, err := mountinfo.Mounted(dir)
	if err != nil || mounted {
		return err
	}
	if err := unix.Mount(src, dir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount %s on %s: %w", src, dir, err)
	}
	if !ro {
		return nil
	}
	// A bind takes read-only only on a remount.
	if err := unix.Mount("", dir, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		_ = unix.Unmount(dir, unix.MNT_DETACH)
		return fmt.Errorf("remount %s read-only: %w", dir, err)
	}
	return nil
}
