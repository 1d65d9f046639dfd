package volume

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	v1 "k8s.io/api/core/v1"
)

// Upstream's fsGroup permission bits: group read-write, and for folders group search and
// setgid so new files inherit the group.
const (
	fsGroupRW   = 0o660
	fsGroupExec = 0o110
)

// applyFSGroup gives the pod's fsGroup every file under dir as upstream's
// SetVolumeOwnership does; with OnRootMismatch it does nothing when the root already has
// the group and the bits.
func applyFSGroup(dir string, gid int64, policy *v1.PodFSGroupChangePolicy) error {
	if policy != nil && *policy == v1.FSGroupChangeOnRootMismatch && rootHasGroup(dir, gid) {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, -1, int(gid)); err != nil {
			return err
		}
		// chmod follows symlinks: leave their targets' modes alone.
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mask := fs.FileMode(fsGroupRW)
		if d.IsDir() {
			mask |= fs.ModeSetgid | fsGroupExec
		}
		return os.Chmod(p, info.Mode()|mask)
	})
}

func rootHasGroup(dir string, gid int64) bool {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	want := fs.FileMode(fsGroupRW | fsGroupExec)
	return ok && int64(st.Gid) == gid && fi.Mode().Perm()&want == want && fi.Mode()&fs.ModeSetgid != 0
}
