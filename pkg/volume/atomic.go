package volume

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// File is one file of a content volume (configMap, secret, downwardAPI, projected).
type File struct {
	Data []byte
	Mode os.FileMode
}

// dataLink is the symlink that names the current generation of a content volume's files.
// Readers see either the old generation or the new one, never a mix: a new generation is
// written into a fresh timestamped folder and ..data is swapped to it with one rename, as
// the upstream kubelet does.
//
//	<dir>/key         -> ..data/key          (one symlink per top-level name, stable)
//	<dir>/..data      -> ..2026_11_23_10_00_00.123456789
//	<dir>/..2026_...  /key (the files)
const dataLink = "..data"

// writeAtomic makes dir hold exactly files (paths relative, already validated). It
// reports whether anything changed. gid >= 0 makes the files' group gid (fsGroup).
func writeAtomic(dir string, files map[string]File, gid int) (bool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	if same(dir, files) {
		return false, nil
	}
	gen := ".." + time.Now().UTC().Format("2006_01_02_15_04_05.000000000")
	genDir := filepath.Join(dir, gen)
	if err := os.Mkdir(genDir, 0o755); err != nil {
		return false, err
	}
	for p, f := range files {
		full := filepath.Join(genDir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return false, err
		}
		if err := os.WriteFile(full, f.Data, f.Mode); err != nil {
			return false, err
		}
		// WriteFile applies the umask; the mode asked for is the mode given.
		if err := os.Chmod(full, f.Mode); err != nil {
			return false, err
		}
	}
	if gid >= 0 {
		if err := chownTree(genDir, gid); err != nil {
			return false, err
		}
	}
	old, _ := os.Readlink(filepath.Join(dir, dataLink))
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(gen, tmp); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, dataLink)); err != nil {
		return false, err
	}
	// Top-level names: add links for new ones, drop links for names gone.
	want := map[string]bool{}
	for p := range files {
		want[strings.SplitN(p, "/", 2)[0]] = true
	}
	for name := range want {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join(dataLink, name), link); err != nil {
			return false, err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "..") && !want[e.Name()] {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	if old != "" && old != gen {
		_ = os.RemoveAll(filepath.Join(dir, old))
	}
	return true, nil
}

// same reports whether dir's current generation holds exactly files.
func same(dir string, files map[string]File) bool {
	gen, err := os.Readlink(filepath.Join(dir, dataLink))
	if err != nil {
		return false
	}
	root := filepath.Join(dir, gen)
	n := 0
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		f, ok := files[filepath.ToSlash(rel)]
		if !ok {
			return fmt.Errorf("extra %s", rel)
		}
		info, err := d.Info()
		if err != nil || info.Mode().Perm() != f.Mode.Perm() {
			return fmt.Errorf("mode %s", rel)
		}
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(b, f.Data) {
			return fmt.Errorf("content %s", rel)
		}
		n++
		return nil
	})
	return err == nil && n == len(files)
}

func chownTree(root string, gid int) error {
	return filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, -1, gid)
	})
}

// sortedKeys returns m's keys in order (deterministic file sets and errors).
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
