package testbed

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestImageRepo(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io/library/busybox:1.35":    "docker.io/library/busybox",
		"127.0.0.1:5000/e2e/busybox:v1":     "127.0.0.1:5000/e2e/busybox",
		"127.0.0.1:5000/e2e/busybox":        "127.0.0.1:5000/e2e/busybox",
		"registry.k8s.io/pause@sha256:abcd": "registry.k8s.io/pause",
	} {
		if got := imageRepo(in); got != want {
			t.Errorf("imageRepo(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCRIORegistriesConf: the bed's images come from the bed's registry, every other
// repository of a public registry from a closed port, and there is no short-name search.
func TestCRIORegistriesConf(t *testing.T) {
	b := &Bed{Registry: &Registry{Host: "127.0.0.1:5000"}, Images: map[string]v1.Image{BusyboxImage: nil, PauseImage: nil}}
	conf := b.crioRegistriesConf()
	for _, want := range []string{
		"unqualified-search-registries = []\n",
		"[[registry]]\nlocation = \"127.0.0.1:5000\"\ninsecure = true\n",
		"prefix = \"docker.io/library/busybox\"\nlocation = \"127.0.0.1:5000/docker.io/library/busybox\"\n",
		"prefix = \"registry.k8s.io/pause\"\nlocation = \"127.0.0.1:5000/registry.k8s.io/pause\"\n",
		"prefix = \"docker.io\"\nlocation = \"127.0.0.1:1\"\n",
		"prefix = \"quay.io\"\nlocation = \"127.0.0.1:1\"\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("registries.conf lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "_default") {
		t.Errorf("registries.conf names containerd's _default:\n%s", conf)
	}
}
