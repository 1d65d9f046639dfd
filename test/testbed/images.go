package testbed

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Test images, built on this machine (nothing is pulled from the internet).
const (
	BusyboxImage = "docker.io/library/busybox:1.35"
	TestAppImage = "docker.io/minikubelet/testapp:v1"
)

// RepoRoot is the root of the minikubelet source tree.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// BuildGo builds a package of this repository into out as a static binary.
func BuildGo(pkg, out string, ldflags string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, pkg)
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// file is one entry of an image layer.
type file struct {
	path, link string // link set: a symlink
	data       []byte
	mode       int64
}

func layer(files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	now := time.Unix(0, 0)
	for _, f := range files {
		for d := filepath.Dir(f.path); d != "." && d != "/" && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	var dl []string
	for d := range dirs {
		dl = append(dl, d)
	}
	// Parents before children.
	for len(dl) > 0 {
		shortest := 0
		for i, d := range dl {
			if strings.Count(d, "/") < strings.Count(dl[shortest], "/") {
				shortest = i
			}
		}
		d := dl[shortest]
		dl = append(dl[:shortest], dl[shortest+1:]...)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: now}); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		h := &tar.Header{Name: f.path, Mode: f.mode, ModTime: now}
		if f.link != "" {
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.link
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

func image(files []file, cfg v1.Config) (v1.Image, error) {
	l, err := layer(files)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config = cfg
	cf.Created = v1.Time{Time: time.Unix(0, 0)}
	return mutate.ConfigFile(img, cf)
}

var pathEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// BuildImages builds the pause, busybox and test-app images.
func BuildImages(workDir string) (map[string]v1.Image, error) {
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, err
	}
	read := func(pkg string) ([]byte, error) {
		out := filepath.Join(workDir, filepath.Base(pkg))
		if err := BuildGo("./"+pkg, out, "-s -w"); err != nil {
			return nil, err
		}
		return os.ReadFile(out)
	}
	pause, err := read("test/images/pause")
	if err != nil {
		return nil, err
	}
	testapp, err := read("test/images/testapp")
	if err != nil {
		return nil, err
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, fmt.Errorf("busybox (apt-get install busybox-static): %w", err)
	}
	out, err := exec.Command("/bin/busybox", "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list-full: %w", err)
	}
	bbFiles := []file{{path: "bin/busybox", data: bb, mode: 0o755}}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "bin/busybox" {
			bbFiles = append(bbFiles, file{path: applet, link: "/bin/busybox", mode: 0o777})
		}
	}
	etc := []file{
		{path: "etc/passwd", data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), mode: 0o644},
		{path: "etc/group", data: []byte("root:x:0:\nnogroup:x:65534:\n"), mode: 0o644},
		{path: "tmp/.keep", mode: 0o644},
	}

	imgs := map[string]v1.Image{}
	if imgs[PauseImage], err = image([]file{{path: "pause", data: pause, mode: 0o755}},
		v1.Config{Entrypoint: []string{"/pause"}}); err != nil {
		return nil, err
	}
	if imgs[BusyboxImage], err = image(append(bbFiles, etc...), v1.Config{Cmd: []string{"sh"}, Env: pathEnv}); err != nil {
		return nil, err
	}
	if imgs[TestAppImage], err = image(append(append(bbFiles, etc...), file{path: "testapp", data: testapp, mode: 0o755}),
		v1.Config{Entrypoint: []string{"/testapp"}, Env: pathEnv}); err != nil {
		return nil, err
	}
	return imgs, nil
}

// ImportImages writes the images as one archive and imports it into the test bed's
// containerd (namespace k8s.io, where CRI looks) with the ctr tool that ships with it.
func (b *Bed) ImportImages(imgs map[string]v1.Image) error {
	return b.importImages(b.ContainerdSocket(), imgs)
}

func (b *Bed) importImages(socket string, imgs map[string]v1.Image) error {
	refs := map[name.Reference]v1.Image{}
	for n, img := range imgs {
		tag, err := name.NewTag(n)
		if err != nil {
			return err
		}
		refs[tag] = img
	}
	archive := filepath.Join(b.Dir, "images", "images.tar")
	if err := tarball.MultiRefWriteToFile(archive, refs); err != nil {
		return err
	}
	cmd := exec.Command("ctr", "--address", socket, "-n", "k8s.io", "images", "import", archive)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ctr images import: %v\n%s", err, out)
	}
	return nil
}
