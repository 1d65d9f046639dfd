package cluster

import (
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// The images `kubeadm config images list` names for the pinned version, built here from
// the pinned binaries (nothing is pulled). Each holds its program where upstream's image
// does, so kubeadm's manifests (command: kube-apiserver, etcd ...; kube-proxy at
// /usr/local/bin; CoreDNS's entrypoint /coredns) run unchanged.
const (
	KubernetesVersion = "v1.37.2"
	PauseImage        = "registry.k8s.io/pause:3.10.2"
	CoreDNSImage      = "registry.k8s.io/coredns/coredns:v1.14.6"
	EtcdImage         = "registry.k8s.io/etcd:3.7.0-0"
	// TestAppV2 is the test app under a second tag, for rolling updates.
	TestAppV2 = "docker.io/minikubelet/testapp:v2"
)

func componentImage(name string) string {
	return "registry.k8s.io/" + name + ":" + KubernetesVersion
}

var pathEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// buildImages builds the control-plane and add-on images from the tools folder, plus the
// test bed's images (pause is tagged as kubeadm's too). controlPlane: the images only the
// control-plane node needs.
func buildImages(toolsBin, workDir string) (all, controlPlane map[string]v1.Image, err error) {
	all, err = testbed.BuildImages(workDir)
	if err != nil {
		return nil, nil, err
	}
	all[PauseImage] = all[testbed.PauseImage]
	all[TestAppV2] = all[testbed.TestAppImage]
	controlPlane = map[string]v1.Image{}
	binImage := func(bin, dest string, extra []testbed.File, cfg v1.Config) (v1.Image, error) {
		data, err := os.ReadFile(filepath.Join(toolsBin, bin))
		if err != nil {
			return nil, err
		}
		return testbed.NewImage(append(extra, testbed.File{Path: dest, Data: data, Mode: 0o755}), cfg)
	}
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		if controlPlane[componentImage(c)], err = binImage(c, "usr/local/bin/"+c, nil, v1.Config{Env: pathEnv}); err != nil {
			return nil, nil, err
		}
	}
	if controlPlane[EtcdImage], err = binImage("etcd", "usr/local/bin/etcd", nil, v1.Config{Env: pathEnv}); err != nil {
		return nil, nil, err
	}
	iptables, err := iptablesFiles()
	if err != nil {
		return nil, nil, fmt.Errorf("kube-proxy image: %w", err)
	}
	if all[componentImage("kube-proxy")], err = binImage("kube-proxy", "usr/local/bin/kube-proxy", iptables, v1.Config{Env: pathEnv}); err != nil {
		return nil, nil, err
	}
	if all[CoreDNSImage], err = binImage("coredns", "coredns", nil, v1.Config{Entrypoint: []string{"/coredns"}, Env: pathEnv}); err != nil {
		return nil, nil, err
	}
	if all[MetricsServerImage], err = metricsServerImage(); err != nil {
		return nil, nil, fmt.Errorf("metrics-server image: %w", err)
	}
	for k, v := range all {
		controlPlane[k] = v
	}
	return all, controlPlane, nil
}

// iptablesFiles is the machine's iptables (nft backend, as the nodes' own iptables and
// the CNI plugins use; kube-proxy must write to the same tables) with its libraries and
// extensions, for the kube-proxy image.
func iptablesFiles() ([]testbed.File, error) {
	ext, _ := filepath.Glob("/usr/lib/x86_64-linux-gnu/xtables/*.so")
	files, err := testbed.HostFiles(append([]string{"/usr/sbin/xtables-nft-multi"}, ext...), "/etc/protocols", "/etc/services", "/etc/ethertypes")
	if err != nil {
		return nil, err
	}
	for _, cmd := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
		files = append(files, testbed.File{Path: "usr/sbin/" + cmd, Link: "xtables-nft-multi", Mode: 0o777})
	}
	return files, nil
}
