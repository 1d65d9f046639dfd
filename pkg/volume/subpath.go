package volume

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// SubPath returns the host path of sub inside a volume's root, creating it as a folder if
// it does not exist (as upstream does). sub must be relative and free of ".." elements;
// symlinks inside the volume are resolved as if the volume were the root, so nothing a
// container wrote into the volume can make the mount point outside of it.
func SubPath(root, sub string) (string, error) {
	if err := validSubPath(sub); err != nil {
		return "", err
	}
	p, err := securejoin.SecureJoin(root, sub)
	if err != nil {
		return "", fmt.Errorf("subPath %q: %w", sub, err)
	}
	if _, err := os.Lstat(p); os.IsNotExist(err) {
		if err := os.MkdirAll(p, 0o750); err != nil {
			return "", fmt.Errorf("subPath %q: %w", sub, err)
		}
		// MkdirAll follows links; check the result is still inside the volume.
		if again, err := securejoin.SecureJoin(root, sub); err != nil || again != p {
			return "", fmt.Errorf("subPath %q: changed while being created", sub)
		}
	}
	return p, nil
}

func validSubPath(sub string) error {
	if sub == "" {
		return fmt.Errorf("subPath must not be empty")
	}
	if path.IsAbs(sub) || filepath.IsAbs(sub) {
		return fmt.Errorf("subPath %q must be a relative path", sub)
	}
	for _, e := range strings.Split(filepath.ToSlash(sub), "/") {
		if e == ".." {
			return fmt.Errorf("subPath %q must not contain '..'", sub)
		}
	}
	return nil
}

// validFilePath checks a file path of a content volume (items[].path and the like).
func validFilePath(p string) error {
	if p == "" || path.IsAbs(p) || strings.HasPrefix(p, "..") {
		return fmt.Errorf("invalid file path %q", p)
	}
	for _, e := range strings.Split(p, "/") {
		if e == ".." || e == "" {
			return fmt.Errorf("invalid file path %q", p)
		}
	}
	return nil
}
