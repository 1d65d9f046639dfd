// Package conformance runs upstream's conformance suite (e2e.test, built by
// hack/build-conformance.sh) against a cluster of minikubelet nodes: the e2e images it
// needs are built here, from the machine's busybox and the pinned agnhost, because none
// can be pulled.
package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// The e2e images built here, by the names the pinned e2e.test uses
// (e2e.test --list-images). Images that no conformance spec uses are left out.
const (
	Agnhost       = "registry.k8s.io/e2e-test-images/agnhost:2.66.1"
	AgnhostOld    = "registry.k8s.io/e2e-test-images/agnhost:2.55"
	Busybox       = "registry.k8s.io/e2e-test-images/busybox:1.37.0-2"
	BusyboxOld    = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"
	Nonroot       = "registry.k8s.io/e2e-test-images/nonroot:1.5"
	Nonewprivs    = "registry.k8s.io/e2e-test-images/nonewprivs:1.4"
	Nginx         = "registry.k8s.io/e2e-test-images/nginx:1.27.0-2"
	NginxNew      = "registry.k8s.io/e2e-test-images/nginx:1.28.0-2"
	GlibcDNS      = "registry.k8s.io/e2e-test-images/glibc-dns-testing:2.1.1"
	Kitten        = "registry.k8s.io/e2e-test-images/kitten:1.8"
	Nautilus      = "registry.k8s.io/e2e-test-images/nautilus:1.8"
	NonrootUID    = "1234"
	imageUserName = "user-defined-in-image" // uid 1000, in group-defined-in-image (50000)
)

var pathEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// Images builds the e2e images from the files in bin (agnhost, nnp and agnhost's
// localhost.crt and .key, as hack/build-conformance.sh leaves them) and the pinned CoreDNS
// (coredns, agnhost's DNS server for the DNS specs). What differs from upstream's images, and why:
//   - the base is Debian's busybox 1.35 with every applet also in /bin, as upstream's
//     busybox image has them; /bin/sh is bash (with its libraries), because 1.35's ash drops
//     environment variables whose names are no shell names (data-1) and 1.37's keeps them;
//   - agnhost's curl, dig and nc are this machine's (see agnhostTools);
//   - nginx, kitten and nautilus are agnhost serving HTTP on port 80 (test-webserver), as
//     kitten and nautilus are upstream; nginx's page says what nginx's does.
func Images(bin, coredns string) (map[string]v1.Image, error) {
	read := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(bin, name)) }
	agnhost, err := read("agnhost")
	if err != nil {
		return nil, err
	}
	agnhostFiles := []testbed.File{{Path: "agnhost", Data: agnhost, Mode: 0o755}, {Path: "agnhost-2", Link: "agnhost", Mode: 0o777}}
	for _, f := range []string{"localhost.crt", "localhost.key"} {
		data, err := read(f)
		if err != nil {
			return nil, err
		}
		agnhostFiles = append(agnhostFiles, testbed.File{Path: f, Data: data, Mode: 0o644})
	}
	dns, err := os.ReadFile(coredns)
	if err != nil {
		return nil, fmt.Errorf("coredns for agnhost: %w", err)
	}
	nnp, err := read("nnp")
	if err != nil {
		return nil, err
	}
	base, err := baseFiles()
	if err != nil {
		return nil, err
	}
	with := func(extra ...testbed.File) []testbed.File { return append(append([]testbed.File{}, base...), extra...) }
	web := func(page testbed.File) (v1.Image, error) {
		return testbed.NewImage(with(append(agnhostFiles, page)...),
			v1.Config{Entrypoint: []string{"/agnhost"}, Cmd: []string{"test-webserver"}, Env: pathEnv})
	}

	imgs := map[string]v1.Image{}
	add := func(names []string, img v1.Image, err error) error {
		if err != nil {
			return fmt.Errorf("image %s: %w", names[0], err)
		}
		for _, n := range names {
			imgs[n] = img
		}
		return nil
	}
	tools, err := agnhostTools(base)
	if err != nil {
		return nil, err
	}
	ag, err := testbed.NewImage(append(append(tools, agnhostFiles...), testbed.File{Path: "coredns", Data: dns, Mode: 0o755}), v1.Config{Entrypoint: []string{"/agnhost"}, Cmd: []string{"pause"}, Env: pathEnv})
	// glibc-dns-testing is Debian with dig: the agnhost image here is that too.
	if err := add([]string{Agnhost, AgnhostOld, GlibcDNS}, ag, err); err != nil {
		return nil, err
	}
	bb, err := testbed.NewImage(base, v1.Config{Cmd: []string{"sh"}, Env: pathEnv})
	if err := add([]string{Busybox, BusyboxOld}, bb, err); err != nil {
		return nil, err
	}
	nr, err := testbed.NewImage(base, v1.Config{Cmd: []string{"sh"}, Env: pathEnv, User: NonrootUID})
	if err := add([]string{Nonroot}, nr, err); err != nil {
		return nil, err
	}
	// nnp is set-uid root: it prints the effective uid it got.
	np, err := testbed.NewImage(with(testbed.File{Path: "usr/local/bin/nnp", Data: nnp, Mode: 0o4755}),
		v1.Config{Cmd: []string{"nnp"}, Env: pathEnv})
	if err := add([]string{Nonewprivs}, np, err); err != nil {
		return nil, err
	}
	ngx, err := web(testbed.File{Path: "index.html", Data: []byte(nginxPage), Mode: 0o644})
	if err := add([]string{Nginx, NginxNew}, ngx, err); err != nil {
		return nil, err
	}
	kt, err := web(testbed.File{Path: "data.json", Data: []byte("{\n  \"image\": \"kitten.jpg\"\n}\n"), Mode: 0o644})
	if err := add([]string{Kitten}, kt, err); err != nil {
		return nil, err
	}
	nt, err := web(testbed.File{Path: "data.json", Data: []byte("{\n  \"image\": \"nautilus.jpg\"\n}\n"), Mode: 0o644})
	if err := add([]string{Nautilus}, nt, err); err != nil {
		return nil, err
	}
	return imgs, nil
}

// baseFiles: busybox (every applet also in /bin), bash as /bin/sh, and the users and
// groups upstream's images define.
func baseFiles() ([]testbed.File, error) {
	bb, err := testbed.BusyboxFiles()
	if err != nil {
		return nil, err
	}
	var files []testbed.File
	for _, f := range bb {
		g := f
		g.Path = "bin/" + filepath.Base(f.Path)
		files = append(files, f, g)
	}
	bash, err := testbed.HostFiles([]string{"/bin/bash"})
	if err != nil {
		return nil, fmt.Errorf("bash for the e2e images: %w", err)
	}
	// unique keeps the last of each path: bash's sh over busybox's.
	files = unique(append(append(files, bash...), testbed.File{Path: "bin/sh", Link: "/bin/bash", Mode: 0o777}))
	return append(files,
		testbed.File{Path: "etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n" +
			imageUserName + ":x:1000:1000::/home/" + imageUserName + ":/bin/sh\n"), Mode: 0o644},
		testbed.File{Path: "etc/group", Data: []byte("root:x:0:\nnogroup:x:65534:\n" + imageUserName + ":x:1000:\ngroup-defined-in-image:x:50000:" + imageUserName + "\n"), Mode: 0o644},
		testbed.File{Path: "tmp/.keep", Mode: 0o644},
		testbed.File{Path: "uploads/.keep", Mode: 0o644},
	), nil
}

// agnhostTools: the base with the tools upstream's agnhost image installs that the
// specs call, taken from this machine with their libraries: curl, dig, getent (with an
// nsswitch.conf that reads /etc/hosts, then DNS), and OpenBSD's nc (busybox's has no -v,
// -t, -u or -z).
func agnhostTools(base []testbed.File) ([]testbed.File, error) {
	host, err := testbed.HostFiles([]string{"/usr/bin/curl", "/usr/bin/dig", "/usr/bin/nc.openbsd", "/usr/bin/getent"})
	if err != nil {
		return nil, fmt.Errorf("agnhost's tools (apt-get install curl bind9-dnsutils netcat-openbsd): %w", err)
	}
	files := append(append(slices.Clone(base), host...),
		testbed.File{Path: "usr/bin/nc", Link: "nc.openbsd", Mode: 0o777}, testbed.File{Path: "bin/nc", Link: "/usr/bin/nc.openbsd", Mode: 0o777},
		testbed.File{Path: "etc/nsswitch.conf", Data: []byte("hosts: files dns\n"), Mode: 0o644})
	return unique(files), nil
}

// unique keeps one file per path: the last one given, where the first one was.
func unique(files []testbed.File) []testbed.File {
	at := map[string]int{}
	var out []testbed.File
	for _, f := range files {
		if i, ok := at[f.Path]; ok {
			out[i] = f
			continue
		}
		at[f.Path] = len(out)
		out = append(out, f)
	}
	return out
}

const nginxPage = "<!DOCTYPE html>\n<html>\n<head>\n<title>Welcome to nginx!</title>\n</head>\n<body>\n<h1>Welcome to nginx!</h1>\n</body>\n</html>\n"
