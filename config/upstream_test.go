package config

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// kubeadm's /var/lib/kubelet/kubeadm-flags.env (KUBELET_KUBEADM_ARGS) parses; the flags
// minikubelet does not implement come back as one warning naming them.
func TestKubeadmFlagsEnv(t *testing.T) {
	args := strings.Fields("--container-runtime-endpoint=unix:///run/containerd/containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.10")
	c, warnings, err := Parse(append(args, "--kubeconfig=/k"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kubelet.ContainerRuntimeEndpoint != "unix:///run/containerd/containerd.sock" {
		t.Errorf("runtime endpoint %q", c.Kubelet.ContainerRuntimeEndpoint)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "--pod-infra-container-image") {
		t.Errorf("warnings %q, want one naming --pod-infra-container-image", warnings)
	}
	if err := Validate(c); err != nil {
		t.Errorf("Validate: %v", err)
	}

	// Several ignored flags, a bool one without a value among them: still one line, in
	// name order, and the flags after the bool one are not swallowed as its value.
	c, warnings, err = Parse([]string{"--fail-swap-on=false", "--cloud-provider=external", "--seccomp-default", "--max-pods=20",
		"--kubeconfig=/k", "--node-labels=a=b", "--feature-gates=ContainerCheckpoint=false"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := "ignoring upstream kubelet flags minikubelet does not implement: --cloud-provider, --fail-swap-on, --seccomp-default"
	if len(warnings) != 1 || warnings[0] != want {
		t.Errorf("warnings %q, want [%q]", warnings, want)
	}
	if c.Kubelet.MaxPods != 20 || c.NodeLabels["a"] != "b" || c.Kubelet.FeatureGates["ContainerCheckpoint"] {
		t.Errorf("flags after an ignored one lost: maxPods %d labels %v", c.Kubelet.MaxPods, c.NodeLabels)
	}

	// Nothing ignored, no warning.
	if _, warnings, err := Parse([]string{"--kubeconfig=/k", "--v=2"}, io.Discard); err != nil || len(warnings) != 0 {
		t.Errorf("plain flags: err %v warnings %q", err, warnings)
	}
}

func TestUnknownFlagsStayErrors(t *testing.T) {
	for _, arg := range []string{"--no-such-flag", "--no-such-flag=1", "--pod-infra-container", "--kubeconfigs=/k"} {
		_, _, err := Parse([]string{"--kubeconfig=/k", arg}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "unknown flag") {
			t.Errorf("Parse(%s): %v, want unknown flag", arg, err)
		}
	}
}

func TestIgnoredFlagsHiddenFromHelp(t *testing.T) {
	var out bytes.Buffer
	if _, _, err := Parse([]string{"--help"}, &out); !errors.Is(err, ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, hidden := range []string{"--pod-infra-container-image", "--cloud-provider", "--fail-swap-on"} {
		if strings.Contains(out.String(), hidden) {
			t.Errorf("help lists ignored %s", hidden)
		}
	}
	for _, shown := range []string{"--bootstrap-kubeconfig", "--cert-dir", "--rotate-certificates", "--pod-manifest-path", "--eviction-hard"} {
		if !strings.Contains(out.String(), shown) {
			t.Errorf("help does not list %s", shown)
		}
	}
}

// A kubeadm node's files: the systemd drop-in's flags and the config.yaml kubeadm wrote
// (testdata/kubeadm-config.yaml, cgroupDriver: systemd included) load without a warning
// and validate.
func TestKubeadmConfigFile(t *testing.T) {
	args := []string{
		"--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf", "--kubeconfig=/etc/kubernetes/kubelet.conf",
		"--config=" + filepath.Join("testdata", "kubeadm-config.yaml"),
		"--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock",
	}
	c, warnings, err := Parse(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings %q", warnings)
	}
	k := c.Kubelet
	for _, check := range []struct {
		what      string
		got, want any
	}{
		{"clientCAFile", k.Authentication.X509.ClientCAFile, "/etc/kubernetes/pki/ca.crt"},
		{"anonymous", *k.Authentication.Anonymous.Enabled, false},
		{"webhook authn", *k.Authentication.Webhook.Enabled, true},
		{"webhook cacheTTL (0s defaulted)", k.Authentication.Webhook.CacheTTL.Duration, 2 * time.Minute},
		{"authorization", string(k.Authorization.Mode), "Webhook"},
		{"cgroupDriver", k.CgroupDriver, "systemd"},
		{"clusterDNS", strings.Join(k.ClusterDNS, ","), "10.96.0.10"},
		{"clusterDomain", k.ClusterDomain, "cluster.local"},
		{"staticPodPath", k.StaticPodPath, "/etc/kubernetes/manifests"},
		{"rotateCertificates", k.RotateCertificates, true},
		{"resolvConf", *k.ResolverConfig, "/run/systemd/resolve/resolv.conf"},
		{"healthz", *k.HealthzPort, int32(10248)},
		{"nodeStatusUpdateFrequency (0s defaulted)", k.NodeStatusUpdateFrequency.Duration, 10 * time.Second},
		{"nodeStatusReportFrequency (0s defaulted)", k.NodeStatusReportFrequency.Duration, 5 * time.Minute},
		{"runtime endpoint (\"\" in the file, from the flag)", k.ContainerRuntimeEndpoint, "unix:///var/run/containerd/containerd.sock"},
		{"image endpoint", k.ImageServiceEndpoint, "unix:///var/run/containerd/containerd.sock"},
		{"bootstrap kubeconfig", c.BootstrapKubeconfigPath, "/etc/kubernetes/bootstrap-kubelet.conf"},
		{"cert dir", c.CertDir, "/var/lib/minikubelet/pki"},
	} {
		if check.got != check.want {
			t.Errorf("%s: %v, want %v", check.what, check.got, check.want)
		}
	}
	if err := Validate(c); err != nil {
		t.Errorf("Validate: %v", err)
	}
	c, _, err = Parse(append(args, "--cgroup-driver=cgroupfs", "--cert-dir=/var/lib/kubelet/pki"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(c); err != nil {
		t.Errorf("with --cgroup-driver=cgroupfs: %v", err)
	}
	if c.CertDir != "/var/lib/kubelet/pki" {
		t.Errorf("cert dir %q", c.CertDir)
	}
}

func TestResourceMapFlags(t *testing.T) {
	c, _, err := Parse([]string{"--kubeconfig=/k", "--eviction-hard=memory.available<200Mi,nodefs.available<5%", "--kube-reserved=cpu=100m,memory=100Mi", "--system-reserved=memory=1Gi"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	k := c.Kubelet
	// As upstream: the flag replaces the default thresholds rather than merging with them.
	if len(k.EvictionHard) != 2 || k.EvictionHard["memory.available"] != "200Mi" || k.EvictionHard["nodefs.available"] != "5%" {
		t.Errorf("evictionHard %v", k.EvictionHard)
	}
	if k.KubeReserved["cpu"] != "100m" || k.KubeReserved["memory"] != "100Mi" || k.SystemReserved["memory"] != "1Gi" {
		t.Errorf("reserved %v %v", k.KubeReserved, k.SystemReserved)
	}
	if !slices.Contains(upstreamFlagNames(), "eviction-hard") {
		t.Error("eviction-hard is not an upstream flag?")
	}
}

func upstreamFlagNames() []string {
	var out []string
	for _, u := range upstreamFlags {
		out = append(out, u.Name)
	}
	return out
}
