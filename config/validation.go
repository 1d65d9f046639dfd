package config

import (
	"fmt"
	"math"
	"net"
	"strings"

	"github.com/minikubelet/minikubelet/pkg/kubelet/eviction"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
)

// Validate checks the whole config and returns every problem at once, each naming the
// config field and its flag.
func Validate(c *Config) error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	k := &c.Kubelet

	if c.KubeconfigPath == "" && k.StaticPodPath == "" {
		add("kubeconfig (--kubeconfig): required (only a standalone node with staticPodPath (--pod-manifest-path) runs without)")
	}
	if c.KubeconfigPath == "" {
		if *k.Authentication.Webhook.Enabled {
			add("authentication.webhook.enabled (--authentication-token-webhook): needs an API server (--kubeconfig); a standalone node cannot check tokens")
		}
		if k.Authorization.Mode == kubeletv1beta1.KubeletAuthorizationModeWebhook {
			add("authorization.mode (--authorization-mode): Webhook needs an API server (--kubeconfig); use AlwaysAllow on a standalone node")
		}
	}
	if q, err := resource.ParseQuantity(k.ContainerLogMaxSize); err != nil || q.Value() <= 0 {
		add("containerLogMaxSize (--container-log-max-size): %q is not a positive quantity", k.ContainerLogMaxSize)
	}
	if k.ContainerLogMaxFiles != nil && *k.ContainerLogMaxFiles < 2 {
		add("containerLogMaxFiles (--container-log-max-files): must be at least 2, got %d", *k.ContainerLogMaxFiles)
	}
	if c.RootDir == "" {
		add("root dir (--root-dir): must not be empty")
	}
	if !strings.HasPrefix(k.ContainerRuntimeEndpoint, "unix://") && !strings.HasPrefix(k.ContainerRuntimeEndpoint, "/") {
		add("containerRuntimeEndpoint (--container-runtime-endpoint): %q is not a unix socket (want unix:///path)", k.ContainerRuntimeEndpoint)
	}
	if !strings.HasPrefix(k.ImageServiceEndpoint, "unix://") && !strings.HasPrefix(k.ImageServiceEndpoint, "/") {
		add("imageServiceEndpoint (--image-service-endpoint): %q is not a unix socket (want unix:///path)", k.ImageServiceEndpoint)
	}
	for _, msg := range validateCgroups(k) {
		add("%s", msg)
	}
	if k.MaxPods < 1 {
		add("maxPods (--max-pods): %d must be at least 1", k.MaxPods)
	}
	if k.NodeStatusUpdateFrequency.Duration <= 0 {
		add("nodeStatusUpdateFrequency (--node-status-update-frequency): %v must be positive", k.NodeStatusUpdateFrequency.Duration)
	}
	if k.NodeStatusReportFrequency.Duration < k.NodeStatusUpdateFrequency.Duration {
		add("nodeStatusReportFrequency: %v must be at least nodeStatusUpdateFrequency (%v)", k.NodeStatusReportFrequency.Duration, k.NodeStatusUpdateFrequency.Duration)
	}
	if k.NodeStatusMaxImages != nil && *k.NodeStatusMaxImages < -1 {
		add("nodeStatusMaxImages (--node-status-max-images): %d must be -1 or greater", *k.NodeStatusMaxImages)
	}
	if k.NodeLeaseDurationSeconds <= 0 {
		add("nodeLeaseDurationSeconds: %d must be positive", k.NodeLeaseDurationSeconds)
	}
	if k.Port < 1 || k.Port > 65535 {
		add("port (--port): %d is not in 1..65535", k.Port)
	}
	if net.ParseIP(k.Address) == nil {
		add("address (--address): %q is not an IP address", k.Address)
	}
	if (k.TLSCertFile == "") != (k.TLSPrivateKeyFile == "") {
		add("tlsCertFile and tlsPrivateKeyFile (--tls-cert-file, --tls-private-key-file): give both or neither")
	}
	switch k.Authorization.Mode {
	case kubeletv1beta1.KubeletAuthorizationModeAlwaysAllow, kubeletv1beta1.KubeletAuthorizationModeWebhook:
	default:
		add("authorization.mode (--authorization-mode): %q is not AlwaysAllow or Webhook", k.Authorization.Mode)
	}
	if p := *k.HealthzPort; p < 0 || p > 65535 {
		add("healthzPort (--healthz-port): %d is not in 0..65535", p)
	}
	if net.ParseIP(k.HealthzBindAddress) == nil {
		add("healthzBindAddress (--healthz-bind-address): %q is not an IP address", k.HealthzBindAddress)
	}
	if *k.KubeAPIQPS < 0 {
		add("kubeAPIQPS (--kube-api-qps): %d must not be negative", *k.KubeAPIQPS)
	}
	if k.KubeAPIBurst < 0 {
		add("kubeAPIBurst (--kube-api-burst): %d must not be negative", k.KubeAPIBurst)
	}
	if *k.EventRecordQPS < 0 {
		add("eventRecordQPS (--event-qps): %d must not be negative", *k.EventRecordQPS)
	}
	if k.EventBurst < 0 {
		add("eventBurst (--event-burst): %d must not be negative", k.EventBurst)
	}
	if k.CgroupDriver != "cgroupfs" && k.CgroupDriver != "systemd" {
		add("cgroupDriver (--cgroup-driver): %q must be cgroupfs or systemd", k.CgroupDriver)
	}
	if c.NodeIP != "" {
		if ip := net.ParseIP(c.NodeIP); ip == nil {
			add("node IP (--node-ip): %q is not an IP address", c.NodeIP)
		} else if ip.IsUnspecified() {
			add("node IP (--node-ip): %q must be a specific address", c.NodeIP)
		}
	}
	if c.HostnameOverride != "" {
		for _, msg := range validation.IsDNS1123Subdomain(strings.ToLower(c.HostnameOverride)) {
			add("hostname override (--hostname-override): %q: %s", c.HostnameOverride, msg)
		}
	}
	for key, val := range c.NodeLabels {
		for _, msg := range validation.IsQualifiedName(key) {
			add("node labels (--node-labels): key %q: %s", key, msg)
		}
		for _, msg := range validation.IsValidLabelValue(val) {
			add("node labels (--node-labels): value %q of %q: %s", val, key, msg)
		}
	}
	for _, t := range k.RegisterWithTaints {
		for _, msg := range validation.IsQualifiedName(t.Key) {
			add("registerWithTaints (--register-with-taints): key %q: %s", t.Key, msg)
		}
		if t.Value != "" {
			for _, msg := range validation.IsValidLabelValue(t.Value) {
				add("registerWithTaints (--register-with-taints): value %q of %q: %s", t.Value, t.Key, msg)
			}
		}
		switch t.Effect {
		case v1.TaintEffectNoSchedule, v1.TaintEffectPreferNoSchedule, v1.TaintEffectNoExecute:
		default:
			add("registerWithTaints (--register-with-taints): effect %q of %q must be NoSchedule, PreferNoSchedule or NoExecute", t.Effect, t.Key)
		}
	}
	for _, msg := range validateImageGC(k) {
		add("%s", msg)
	}
	if _, err := eviction.ParseThresholds(eviction.SettingsOf(k)); err != nil {
		add("eviction thresholds (evictionHard, evictionSoft, evictionSoftGracePeriod, evictionMinimumReclaim): %v", err)
	}
	if k.EvictionPressureTransitionPeriod.Duration < 0 {
		add("evictionPressureTransitionPeriod (--eviction-pressure-transition-period) %v must not be negative", k.EvictionPressureTransitionPeriod.Duration)
	}
	if c.ImageGCPeriod <= 0 {
		add("image GC period (--image-gc-period): %v must be positive", c.ImageGCPeriod)
	}
	if msg := validateIDsPerPod(k.UserNamespaces); msg != "" {
		add("userNamespaces.idsPerPod: %s", msg)
	}
	for _, e := range validateLoggingAndTracing(k) {
		errs = append(errs, e)
	}
	return utilerrors.NewAggregate(errs)
}

// userNsUnitLength is the ID space of one user namespace (upstream's validation_linux.go).
const userNsUnitLength = 65536

// validateIDsPerPod checks userNamespaces.idsPerPod as upstream's validation_linux.go: a
// multiple of 65536, at least that, and within 32 bits.
func validateIDsPerPod(u *kubeletv1beta1.UserNamespaces) string {
	if u == nil || u.IDsPerPod == nil {
		return ""
	}
	switch ids := *u.IDsPerPod; {
	case ids < userNsUnitLength:
		return fmt.Sprintf("%d must not be less than %d", ids, userNsUnitLength)
	case ids%userNsUnitLength != 0:
		return fmt.Sprintf("%d must be a multiple of %d", ids, userNsUnitLength)
	case ids > math.MaxUint32:
		return fmt.Sprintf("%d must not be more than %d", ids, int64(math.MaxUint32))
	}
	return ""
}

// validateImageGC checks the image garbage collection settings as upstream's
// validation.go, with its messages (the ImageMaximumGCAge gate is GA and locked on).
func validateImageGC(k *kubeletv1beta1.KubeletConfiguration) []string {
	var out []string
	high, low := *k.ImageGCHighThresholdPercent, *k.ImageGCLowThresholdPercent
	if high < 0 || high > 100 {
		out = append(out, fmt.Sprintf("invalid configuration: imageGCHighThresholdPercent (--image-gc-high-threshold) %v must be between 0 and 100, inclusive", high))
	}
	if low < 0 || low > 100 {
		out = append(out, fmt.Sprintf("invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) %v must be between 0 and 100, inclusive", low))
	}
	if low >= high {
		out = append(out, fmt.Sprintf("invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) %v must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) %v", low, high))
	}
	minAge, maxAge := k.ImageMinimumGCAge.Duration, k.ImageMaximumGCAge.Duration
	if minAge < 0 {
		out = append(out, fmt.Sprintf("invalid configuration: imageMinimumGCAge %v must not be negative", minAge))
	}
	if maxAge < 0 {
		out = append(out, fmt.Sprintf("invalid configuration: imageMaximumGCAge %v must not be negative", maxAge))
	}
	if maxAge > 0 && maxAge <= minAge {
		out = append(out, fmt.Sprintf("invalid configuration: imageMaximumGCAge %v must be greater than imageMinimumGCAge %v", maxAge, minAge))
	}
	return out
}

// validateCgroups checks the pod cgroup settings with upstream's wording.
func validateCgroups(k *kubeletv1beta1.KubeletConfiguration) []string {
	var out []string
	for _, v := range k.EnforceNodeAllocatable {
		switch v {
		case "pods", "system-reserved", "kube-reserved", "system-reserved-compressible", "kube-reserved-compressible":
		case "none":
			if len(k.EnforceNodeAllocatable) > 1 {
				out = append(out, `invalid configuration: EnforceNodeAllocatable (--enforce-node-allocatable) may not contain additional enforcements when "none" is specified`)
			}
		default:
			out = append(out, fmt.Sprintf(`invalid configuration: option %q specified for EnforceNodeAllocatable (--enforce-node-allocatable). Valid options are "pods", "system-reserved", "kube-reserved", "system-reserved-compressible", "kube-reserved-compressible" or "none"`, v))
		}
	}
	if k.PodPidsLimit != nil && *k.PodPidsLimit < -1 {
		out = append(out, fmt.Sprintf("invalid configuration: podPidsLimit (--pod-max-pids) %d must be -1 (no limit) or more", *k.PodPidsLimit))
	}
	return out
}
