package config

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
)

func TestParseDefaultsAndFlags(t *testing.T) {
	c, _, err := Parse([]string{"--kubeconfig=/k", "--max-pods=50", "--node-labels=a=b,c.io/d=e", "--register-with-taints=k=v:NoSchedule,x:NoExecute"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	k := c.Kubelet
	if k.MaxPods != 50 || k.ContainerRuntimeEndpoint != DefaultRuntimeEndpoint || k.NodeStatusUpdateFrequency.Duration != 10*time.Second ||
		k.NodeStatusReportFrequency.Duration != 5*time.Minute || *k.NodeStatusMaxImages != 50 || k.NodeLeaseDurationSeconds != 40 || k.Port != 10250 || *k.HealthzPort != 10248 ||
		*k.EventRecordQPS != 50 || k.EventBurst != 100 {
		t.Errorf("defaults/flags wrong: %+v", k)
	}
	if c.NodeLabels["a"] != "b" || c.NodeLabels["c.io/d"] != "e" {
		t.Errorf("labels %v", c.NodeLabels)
	}
	want := []v1.Taint{{Key: "k", Value: "v", Effect: v1.TaintEffectNoSchedule}, {Key: "x", Effect: v1.TaintEffectNoExecute}}
	if len(k.RegisterWithTaints) != 2 || k.RegisterWithTaints[0] != want[0] || k.RegisterWithTaints[1] != want[1] {
		t.Errorf("taints %v", k.RegisterWithTaints)
	}
	if err := Validate(c); err != nil {
		t.Errorf("valid config rejected: %v", err)
	}
}

// --rotate-server-certificates is serverTLSBootstrap, a flag that is no longer ignored
// (no warning), and a false flag overrides the file.
func TestRotateServerCertificates(t *testing.T) {
	c, warnings, err := Parse([]string{"--kubeconfig=/k", "--rotate-server-certificates"}, io.Discard)
	if err != nil || len(warnings) != 0 || !c.Kubelet.ServerTLSBootstrap {
		t.Errorf("--rotate-server-certificates: serverTLSBootstrap %v, warnings %q, %v", c.Kubelet.ServerTLSBootstrap, warnings, err)
	}
	f := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(f, []byte("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nserverTLSBootstrap: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, _, err := Parse([]string{"--kubeconfig=/k", "--config=" + f}, io.Discard); err != nil || !c.Kubelet.ServerTLSBootstrap {
		t.Errorf("serverTLSBootstrap in the file: %v %v", c.Kubelet.ServerTLSBootstrap, err)
	}
	if c, _, err := Parse([]string{"--kubeconfig=/k", "--config=" + f, "--rotate-server-certificates=false"}, io.Discard); err != nil || c.Kubelet.ServerTLSBootstrap {
		t.Errorf("--rotate-server-certificates=false over the file: %v %v", c.Kubelet.ServerTLSBootstrap, err)
	}
}

func TestConfigFileThenFlagsOverride(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "config.yaml")
	os.WriteFile(f, []byte("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: 20\nnodeStatusUpdateFrequency: 4s\ncontainerRuntimeEndpoint: unix:///x.sock\n"), 0o644)
	c, warnings, err := Parse([]string{"--config=" + f, "--max-pods=30"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings %v", warnings)
	}
	if c.Kubelet.MaxPods != 30 || c.Kubelet.NodeStatusUpdateFrequency.Duration != 4*time.Second || c.Kubelet.ContainerRuntimeEndpoint != "unix:///x.sock" {
		t.Errorf("file+flags: %+v", c.Kubelet)
	}
	if c.Kubelet.ImageServiceEndpoint != "unix:///x.sock" {
		t.Errorf("image endpoint defaults to runtime endpoint, got %q", c.Kubelet.ImageServiceEndpoint)
	}

	os.WriteFile(f, []byte("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nnoSuchField: 1\n"), 0o644)
	if _, warnings, err = Parse([]string{"--config=" + f}, io.Discard); err != nil || len(warnings) != 1 {
		t.Errorf("unknown field: err %v warnings %v; want one warning", err, warnings)
	}
	for _, bad := range []string{"apiVersion: v1\nkind: Pod\n", "{{{"} {
		os.WriteFile(f, []byte(bad), 0o644)
		if _, _, err := Parse([]string{"--config=" + f}, io.Discard); err == nil || !strings.Contains(err.Error(), "--config") {
			t.Errorf("bad file %q: err %v, want one naming --config", bad, err)
		}
	}
	if _, _, err := Parse([]string{"--config=/nonexistent"}, io.Discard); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Errorf("missing file: %v", err)
	}
}

func TestValidateCollectsEveryError(t *testing.T) {
	c, _, err := Parse([]string{"--max-pods=0", "--node-ip=nope", "--container-runtime-endpoint=tcp://x", "--node-labels=bad key=v",
		"--register-with-taints=k:Sometimes", "--cgroup-driver=cgroupv3", "--healthz-port=70000", "--hostname-override=UPPER_case!",
		"--event-qps=-1", "--event-burst=-2", "--node-status-max-images=-2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	err = Validate(c)
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"kubeconfig (--kubeconfig)", "maxPods (--max-pods)", "node IP (--node-ip)", "containerRuntimeEndpoint (--container-runtime-endpoint)",
		"node labels (--node-labels)", "registerWithTaints (--register-with-taints)", "cgroupDriver (--cgroup-driver)", "healthzPort (--healthz-port)", "hostname override (--hostname-override)",
		"eventRecordQPS (--event-qps): -1 must not be negative", "eventBurst (--event-burst): -2 must not be negative",
		"nodeStatusMaxImages (--node-status-max-images): -2 must be -1 or greater"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
}

func TestParseBadFlagValues(t *testing.T) {
	for _, args := range [][]string{{"--max-pods=x"}, {"--node-labels=novalue"}, {"--register-with-taints=noeffect"}, {"--no-such-flag"}, {"extra-arg"}} {
		if _, _, err := Parse(args, io.Discard); err == nil {
			t.Errorf("Parse(%v) accepted", args)
		}
	}
}

// FuzzParseTaint: any input either parses into a taint whose string form parses back to
// the same taint, or is rejected; never a panic.
func FuzzParseTaint(f *testing.F) {
	for _, s := range []string{"k=v:NoSchedule", "k:NoExecute", ":", "=:", "a=b=c:d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tn, err := ParseTaint(s)
		if err != nil {
			return
		}
		back, err := ParseTaint(tn.ToString())
		if err != nil || back != tn {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", s, tn, tn.ToString(), back, err)
		}
	})
}

func TestImageEndpointFollowsRuntimeFlag(t *testing.T) {
	c, _, err := Parse([]string{"--container-runtime-endpoint=unix:///a.sock"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kubelet.ImageServiceEndpoint != "unix:///a.sock" {
		t.Errorf("image endpoint %q, want the runtime endpoint from the flag", c.Kubelet.ImageServiceEndpoint)
	}
}

// Without --kubeconfig only a standalone node (static pods) may run, and its kubelet API
// cannot ask an API server; without --config the upstream kubelet's flag-only defaults
// (anonymous, AlwaysAllow) apply, so a bare standalone command line is valid.
func TestStandaloneAndLegacyDefaults(t *testing.T) {
	c, _, err := Parse([]string{"--pod-manifest-path=/etc/kubernetes/manifests"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !*c.Kubelet.Authentication.Anonymous.Enabled || *c.Kubelet.Authentication.Webhook.Enabled || c.Kubelet.Authorization.Mode != "AlwaysAllow" {
		t.Errorf("flag-only defaults: %+v %s", c.Kubelet.Authentication, c.Kubelet.Authorization.Mode)
	}
	if err := Validate(c); err != nil {
		t.Errorf("standalone with flag-only defaults: %v", err)
	}
	c, _, _ = Parse([]string{"--pod-manifest-path=/m", "--authorization-mode=Webhook"}, io.Discard)
	if err := Validate(c); err == nil || !strings.Contains(err.Error(), "authorization.mode (--authorization-mode): Webhook needs an API server") {
		t.Errorf("standalone with Webhook authorization: %v", err)
	}
	c, _, _ = Parse(nil, io.Discard)
	if err := Validate(c); err == nil || !strings.Contains(err.Error(), "kubeconfig (--kubeconfig): required") {
		t.Errorf("neither kubeconfig nor static pods: %v", err)
	}
}

// --cluster-dns takes IPv4 and IPv6 addresses; entries that are not IPs are a warning
// naming the field (upstream logs and skips them, and so do the pods' DNS settings).
func TestClusterDNSFlags(t *testing.T) {
	c, warnings, err := Parse([]string{"--kubeconfig=/k", "--cluster-dns=10.96.0.10,fd00::a", "--cluster-domain=k8s.test"}, io.Discard)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("err %v, warnings %q", err, warnings)
	}
	if strings.Join(c.Kubelet.ClusterDNS, ",") != "10.96.0.10,fd00::a" || c.Kubelet.ClusterDomain != "k8s.test" {
		t.Errorf("clusterDNS %q clusterDomain %q", c.Kubelet.ClusterDNS, c.Kubelet.ClusterDomain)
	}
	c, warnings, err = Parse([]string{"--kubeconfig=/k", "--cluster-dns=dns.example,10.96.0.10,10.96.0.300"}, io.Discard)
	want := `clusterDNS (--cluster-dns): ["dns.example" "10.96.0.300"]: not IP addresses, ignored (as the upstream kubelet does)`
	if err != nil || len(warnings) != 1 || warnings[0] != want {
		t.Errorf("err %v, warnings %q; want %q", err, warnings, want)
	}
	if err := Validate(c); err != nil {
		t.Errorf("Validate: %v (upstream starts)", err)
	}
}

// userNamespaces.idsPerPod as upstream's validation_linux.go.
func TestValidateIDsPerPod(t *testing.T) {
	for _, tc := range []struct {
		ids  int64
		want string
	}{
		{ids: 65536},
		{ids: 4 * 65536},
		{ids: 65535, want: "userNamespaces.idsPerPod: 65535 must not be less than 65536"},
		{ids: 0, want: "userNamespaces.idsPerPod: 0 must not be less than 65536"},
		{ids: 65536 + 1, want: "userNamespaces.idsPerPod: 65537 must be a multiple of 65536"},
		{ids: 65536 << 16, want: "userNamespaces.idsPerPod: 4294967296 must not be more than 4294967295"},
	} {
		c, _, err := Parse([]string{"--kubeconfig=/k"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		c.Kubelet.UserNamespaces = &kubeletv1beta1.UserNamespaces{IDsPerPod: &tc.ids}
		err = Validate(c)
		if (tc.want == "") != (err == nil) || (err != nil && err.Error() != tc.want) {
			t.Errorf("idsPerPod %d: %v, want %q", tc.ids, err, tc.want)
		}
	}
}

// Image GC settings: upstream's defaults and validation messages.
func TestImageGCDefaultsAndValidation(t *testing.T) {
	c, _, err := Parse([]string{"--kubeconfig=/k"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	k := c.Kubelet
	if *k.ImageGCHighThresholdPercent != 85 || *k.ImageGCLowThresholdPercent != 80 || k.ImageMinimumGCAge.Duration != 2*time.Minute ||
		k.ImageMaximumGCAge.Duration != 0 || c.ImageGCPeriod != 5*time.Minute {
		t.Errorf("defaults: high %d low %d min %v max %v period %v, want 85 80 2m0s 0s 5m0s", *k.ImageGCHighThresholdPercent,
			*k.ImageGCLowThresholdPercent, k.ImageMinimumGCAge.Duration, k.ImageMaximumGCAge.Duration, c.ImageGCPeriod)
	}
	const pre = "invalid configuration: "
	for _, tc := range []struct {
		flags []string
		max   time.Duration
		want  []string
	}{
		{flags: []string{"--image-gc-high-threshold=1", "--image-gc-low-threshold=0", "--minimum-image-ttl-duration=0s"}},
		{flags: []string{"--image-gc-high-threshold=100"}},
		{flags: []string{"--image-gc-high-threshold=101"}, want: []string{
			pre + "imageGCHighThresholdPercent (--image-gc-high-threshold) 101 must be between 0 and 100, inclusive"}},
		{flags: []string{"--image-gc-low-threshold=-1"}, want: []string{
			pre + "imageGCLowThresholdPercent (--image-gc-low-threshold) -1 must be between 0 and 100, inclusive"}},
		{flags: []string{"--image-gc-low-threshold=85"}, want: []string{
			pre + "imageGCLowThresholdPercent (--image-gc-low-threshold) 85 must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) 85"}},
		{flags: []string{"--minimum-image-ttl-duration=-1s"}, want: []string{pre + "imageMinimumGCAge -1s must not be negative"}},
		{max: -time.Second, want: []string{pre + "imageMaximumGCAge -1s must not be negative"}},
		{max: 2 * time.Minute, want: []string{pre + "imageMaximumGCAge 2m0s must be greater than imageMinimumGCAge 2m0s"}},
		{max: 3 * time.Minute},
		{flags: []string{"--image-gc-period=0s"}, want: []string{"image GC period (--image-gc-period): 0s must be positive"}},
	} {
		c, _, err := Parse(append([]string{"--kubeconfig=/k"}, tc.flags...), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		c.Kubelet.ImageMaximumGCAge.Duration = tc.max
		err = Validate(c)
		var got []string
		if err != nil {
			got = strings.Split(err.Error(), ", ")
			if agg, ok := err.(interface{ Errors() []error }); ok {
				got = nil
				for _, e := range agg.Errors() {
					got = append(got, e.Error())
				}
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%v max %v: got %q, want %q", tc.flags, tc.max, got, tc.want)
		}
	}
}
