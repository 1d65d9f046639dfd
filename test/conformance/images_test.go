package conformance

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// contents reads an image's file system: path -> header (and data for small files).
func contents(t *testing.T, img v1.Image) (map[string]*tar.Header, map[string]string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	hdrs, data := map[string]*tar.Header{}, map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return hdrs, data
		}
		if err != nil {
			t.Fatal(err)
		}
		hdrs[h.Name] = h
		if h.Size < 4096 {
			b, _ := io.ReadAll(tr)
			data[h.Name] = string(b)
		}
	}
}

func TestImages(t *testing.T) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/curl", "/usr/bin/dig", "/usr/bin/nc.openbsd"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: the images are built from it (make deps installs it)", p)
		}
	}
	bin := t.TempDir()
	for _, f := range []string{"agnhost", "nnp", "localhost.crt", "localhost.key", "coredns"} {
		if err := os.WriteFile(filepath.Join(bin, f), []byte("#!/bin/sh\necho "+f+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	imgs, err := Images(bin, filepath.Join(bin, "coredns"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{Agnhost, AgnhostOld, Busybox, BusyboxOld, Nonroot, Nonewprivs, Nginx, NginxNew, Kitten, Nautilus, GlibcDNS} {
		if imgs[n] == nil {
			t.Errorf("no image %s", n)
		}
	}

	hdrs, data := contents(t, imgs[Agnhost])
	link := func(p, want string) {
		t.Helper()
		if h := hdrs[p]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != want {
			t.Errorf("agnhost %s: %+v, want a link to %s", p, h, want)
		}
	}
	link("bin/sh", "/bin/bash")
	if data["localhost.crt"] != "#!/bin/sh\necho localhost.crt\n" {
		t.Errorf("agnhost's /localhost.crt: %q", data["localhost.crt"])
	}
	link("usr/bin/nc", "nc.openbsd")
	link("bin/wget", "/bin/busybox")
	for _, p := range []string{"agnhost", "coredns", "usr/bin/curl", "usr/bin/dig", "usr/bin/getent", "usr/bin/nc.openbsd", "usr/bin/bash"} {
		if h := hdrs[p]; h == nil || h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 {
			t.Errorf("agnhost %s: %+v, want an executable file", p, h)
		}
	}
	if !strings.Contains(data["etc/passwd"], "user-defined-in-image:x:1000:1000:") || !strings.Contains(data["etc/group"], "group-defined-in-image:x:50000:") {
		t.Errorf("agnhost's users and groups:\n%s\n%s", data["etc/passwd"], data["etc/group"])
	}
	if cf, _ := imgs[Agnhost].ConfigFile(); cf.Config.Entrypoint[0] != "/agnhost" {
		t.Errorf("agnhost entrypoint %v", cf.Config.Entrypoint)
	}

	if cf, _ := imgs[Nonroot].ConfigFile(); cf.Config.User != NonrootUID {
		t.Errorf("nonroot runs as %q, want %s", cf.Config.User, NonrootUID)
	}
	hdrs, _ = contents(t, imgs[Nonewprivs])
	if h := hdrs["usr/local/bin/nnp"]; h == nil || h.Mode&0o4000 == 0 {
		t.Errorf("nnp %+v: want set-uid", h)
	}
	hdrs, data = contents(t, imgs[Nginx])
	if !strings.Contains(data["index.html"], "Welcome to nginx!") || hdrs["usr/bin/curl"] != nil {
		t.Errorf("nginx: index %q, curl %v (only agnhost has the extra tools)", data["index.html"], hdrs["usr/bin/curl"] != nil)
	}
	if _, data := contents(t, imgs[Kitten]); data["data.json"] != "{\n  \"image\": \"kitten.jpg\"\n}\n" {
		t.Errorf("kitten's data.json %q: the Update Demo spec reads its image name from it", data["data.json"])
	}
	if cf, _ := imgs[Nginx].ConfigFile(); strings.Join(cf.Config.Cmd, " ") != "test-webserver" {
		t.Errorf("nginx cmd %v", cf.Config.Cmd)
	}
}
