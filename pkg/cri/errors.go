package cri

import "github.com/containerd/errdefs"

// NotFound on stop/remove means the work is already done.
func ignoreNotFound(err error) error {
	if errdefs.IsNotFound(err) {
		return nil
	}
	return err
}
