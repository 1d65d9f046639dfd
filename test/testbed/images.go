package testbed

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
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

// RepoRoot is the root of the minikubelet source tree: a clone, or this module's copy in
// another module's module cache.
func RepoRoot() string {
	_, File, _, _ := runtime.Caller(0)
	root := filepath.Clean(filepath.Join(filepath.Dir(File), "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		// Built with -trimpath: the file name is no path; ask the go command.
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/minikubelet/minikubelet").Output()
		if err == nil && strings.TrimSpace(string(out)) != "" {
			return strings.TrimSpace(string(out))
		}
	}
	return root
}

// MinikubeletTags are the build tags of every minikubelet binary (the Makefile's GOTAGS too).
// grpcnotrace keeps golang.org/x/net/trace out: its html/template calls reflect's
// MethodByName, which makes the linker keep every exported method of every type, and the
// binary's mapped code, most of its resident memory, 40% larger. Upstream's release builds
// set it too.
const MinikubeletTags = "grpcnotrace"

// BuildMinikubelet builds ./cmd/minikubelet into out, reporting version.
func BuildMinikubelet(out, version string) error {
	return buildGo(RepoRoot(), "./cmd/minikubelet", out, "-X github.com/minikubelet/minikubelet/pkg/version.Version="+version, MinikubeletTags)
}

// BuildGo builds a package of this repository into out as a static binary. The build
// runs in RepoRoot with this module's own go.mod (so also in a read-only module cache
// copy), outside any workspace the calling module's environment names.
func BuildGo(pkg, out string, ldflags string) error {
	return BuildGoIn(RepoRoot(), pkg, out, ldflags)
}

// BuildGoIn builds pkg of the module in dir (a module of its own under the repository).
func BuildGoIn(dir, pkg, out string, ldflags string) error {
	return buildGo(dir, pkg, out, ldflags, "")
}

func buildGo(dir, pkg, out, ldflags, tags string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-tags", tags, "-ldflags", ldflags, "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// File is one entry of an image layer.
type File struct {
	Path, Link string // Link set: a symlink
	Data       []byte
	Mode       int64
}

func Layer(files []File) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	now := time.Unix(0, 0)
	for _, f := range files {
		for d := filepath.Dir(f.Path); d != "." && d != "/" && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	var dl []string
	for d := range dirs {
		dl = append(dl, d)
	}
	// Parents before children, in a fixed order so that every build of an image has the
	// same digest and size (upstream's recorded "Image size" events compare equal).
	sort.Slice(dl, func(i, j int) bool {
		if di, dj := strings.Count(dl[i], "/"), strings.Count(dl[j], "/"); di != dj {
			return di < dj
		}
		return dl[i] < dl[j]
	})
	for _, d := range dl {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: now}); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		h := &tar.Header{Name: f.Path, Mode: f.Mode, ModTime: now}
		if f.Link != "" {
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.Link
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

func NewImage(files []File, cfg v1.Config) (v1.Image, error) {
	l, err := Layer(files)
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
	bbFiles, err := BusyboxFiles()
	if err != nil {
		return nil, err
	}
	etc := []File{
		{Path: "etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"), Mode: 0o644},
		{Path: "etc/group", Data: []byte("root:x:0:\nnogroup:x:65534:\n"), Mode: 0o644},
		{Path: "tmp/.keep", Mode: 0o644},
	}

	imgs := map[string]v1.Image{}
	if imgs[PauseImage], err = NewImage([]File{{Path: "pause", Data: pause, Mode: 0o755}},
		v1.Config{Entrypoint: []string{"/pause"}}); err != nil {
		return nil, err
	}
	if imgs[BusyboxImage], err = NewImage(append(bbFiles, etc...), v1.Config{Cmd: []string{"sh"}, Env: pathEnv}); err != nil {
		return nil, err
	}
	if imgs[TestAppImage], err = NewImage(append(append(bbFiles, etc...), File{Path: "testapp", Data: testapp, Mode: 0o755}),
		v1.Config{Entrypoint: []string{"/testapp"}, Env: pathEnv}); err != nil {
		return nil, err
	}
	return imgs, nil
}

// BusyboxFiles are the machine's static busybox and a link for each of its applets,
// where busybox --list-full puts it.
func BusyboxFiles() ([]File, error) {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, fmt.Errorf("busybox (apt-get install busybox-static): %w", err)
	}
	out, err := exec.Command("/bin/busybox", "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list-full: %w", err)
	}
	files := []File{{Path: "bin/busybox", Data: bb, Mode: 0o755}}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "bin/busybox" {
			files = append(files, File{Path: applet, Link: "/bin/busybox", Mode: 0o777})
		}
	}
	return files, nil
}

// HostFiles are files of this machine, for an image, at the same paths: each program with
// the shared libraries ldd says it loads, and each optional file that exists. A symlink
// stays a symlink, and its target is copied too.
func HostFiles(programs []string, optional ...string) ([]File, error) {
	paths := slices.Clone(programs)
	for _, p := range programs {
		libs, err := sharedLibraries(p)
		if err != nil {
			return nil, err
		}
		paths = append(paths, libs...)
	}
	seen := map[string]bool{}
	var files []File
	for _, p := range append(paths, optional...) {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			if os.IsNotExist(err) && slices.Contains(optional, p) {
				continue
			}
			return nil, err
		}
		for _, name := range []string{p, real} {
			if seen[name] {
				continue
			}
			seen[name] = true
			if name != real {
				files = append(files, File{Path: strings.TrimPrefix(name, "/"), Link: real, Mode: 0o777})
				continue
			}
			data, err := os.ReadFile(real)
			if err != nil {
				return nil, err
			}
			files = append(files, File{Path: strings.TrimPrefix(real, "/"), Data: data, Mode: 0o755})
		}
	}
	return files, nil
}

var lddLine = regexp.MustCompile(`(?:=>\s*)?(/\S+)\s+\(0x`)

// sharedLibraries lists the libraries a program loads, as ldd reports them.
func sharedLibraries(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	var libs []string
	for _, m := range lddLine.FindAllStringSubmatch(string(out), -1) {
		libs = append(libs, m[1])
	}
	return libs, nil
}

// ImportImages writes the images as one archive and imports it into the test bed's
// containerd (namespace k8s.io, where CRI looks) with the ctr tool that ships with it.
func (b *Bed) ImportImages(imgs map[string]v1.Image) error {
	return b.importImages(b.ContainerdSocket(), imgs)
}

func (b *Bed) importImages(socket string, imgs map[string]v1.Image) error {
	return ImportImages(socket, filepath.Join(b.Dir, "images", "images.tar"), imgs)
}

// ImportImages writes imgs as one archive at archive and imports it into the containerd
// at socket.
func ImportImages(socket, archive string, imgs map[string]v1.Image) error {
	if err := WriteArchive(archive, imgs); err != nil {
		return err
	}
	return ImportArchive(socket, archive)
}

// WriteArchive writes imgs, by name, as one image archive.
func WriteArchive(archive string, imgs map[string]v1.Image) error {
	refs := map[name.Reference]v1.Image{}
	for n, img := range imgs {
		tag, err := name.NewTag(n)
		if err != nil {
			return err
		}
		refs[tag] = img
	}
	if err := os.MkdirAll(filepath.Dir(archive), 0o755); err != nil {
		return err
	}
	return tarball.MultiRefWriteToFile(archive, refs)
}

// ImportArchive imports an image archive into the containerd at socket (namespace
// k8s.io, where CRI looks) with the ctr tool that ships with it.
func ImportArchive(socket, archive string) error {
	cmd := exec.Command("ctr", "--address", socket, "-n", "k8s.io", "images", "import", archive)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ctr images import: %v\n%s", err, out)
	}
	return nil
}
