// Package config holds minikubelet's configuration: the upstream KubeletConfiguration type
// (kubelet.config.k8s.io/v1beta1, so existing kubelet config files load unchanged) plus the
// flag-only settings the upstream kubelet keeps outside that file, its defaults and validation.
package config

import (
	"errors"
	"fmt"
	"os"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logsapi "k8s.io/component-base/logs/api/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"
)

// Config is everything minikubelet needs to start.
type Config struct {
	// Kubelet is the config file's content, defaulted, with flags applied on top.
	Kubelet kubeletv1beta1.KubeletConfiguration

	// Flag-only settings (upstream KubeletFlags).
	ConfigFile       string
	KubeconfigPath   string
	RootDir          string
	HostnameOverride string
	NodeIP           string
	NodeLabels       map[string]string
	// BootstrapKubeconfigPath is used to request the node's client certificate when
	// KubeconfigPath does not exist yet (or its certificate expired); CertDir holds that
	// certificate (kubelet-client-current.pem) and the self-signed serving one.
	BootstrapKubeconfigPath string
	CertDir                 string

	// ContainerLogsDir is where log shippers find each container's log as a symlink;
	// upstream hard-codes /var/log/containers (minikubelet's own flag, for test beds).
	ContainerLogsDir string
	// NodeLogDir is the folder the kubelet API's /logs/ serves; upstream hard-codes
	// /var/log/ (minikubelet's own flag, for test beds).
	NodeLogDir string
	// ImageGCPeriod is how often image garbage collection runs; upstream hard-codes 5m.
	// Only test beds change it (the hidden --image-gc-period), to see a round in seconds.
	ImageGCPeriod time.Duration
}

// DefaultImageGCPeriod is upstream's ImageGCPeriod (pkg/kubelet/kubelet.go).
const DefaultImageGCPeriod = 5 * time.Minute

// DefaultResolvConf is the upstream default for resolvConf.
const DefaultResolvConf = "/etc/resolv.conf"

// Upstream kubelet v1.37 defaults (pkg/kubelet/apis/config/v1beta1/defaults.go).
const (
	DefaultRuntimeEndpoint = "unix:///run/containerd/containerd.sock"
	DefaultRootDir         = "/var/lib/minikubelet"
)

// SetDefaults fills every field the file and flags left unset with upstream's default.
func SetDefaults(c *kubeletv1beta1.KubeletConfiguration) {
	if c.ContainerRuntimeEndpoint == "" {
		c.ContainerRuntimeEndpoint = DefaultRuntimeEndpoint
	}
	// Container logs: upstream's 10Mi x 5 files, checked every 10s.
	if c.ContainerLogMaxSize == "" {
		c.ContainerLogMaxSize = "10Mi"
	}
	if c.ContainerLogMaxFiles == nil {
		c.ContainerLogMaxFiles = new(int32(5))
	}
	if c.ContainerLogMonitorInterval == nil {
		c.ContainerLogMonitorInterval = &metav1.Duration{Duration: 10 * time.Second}
	}
	if c.MaxPods == 0 {
		c.MaxPods = 110
	}
	// Image garbage collection (upstream's defaults; imageMaximumGCAge 0 is off).
	defDuration(&c.ImageMinimumGCAge, 2*time.Minute)
	if c.ImageGCHighThresholdPercent == nil {
		c.ImageGCHighThresholdPercent = ptr(int32(85))
	}
	if c.ImageGCLowThresholdPercent == nil {
		c.ImageGCLowThresholdPercent = ptr(int32(80))
	}
	defDuration(&c.NodeStatusUpdateFrequency, 10*time.Second)
	defDuration(&c.NodeStatusReportFrequency, 5*time.Minute)
	if c.NodeStatusMaxImages == nil {
		c.NodeStatusMaxImages = ptr(int32(50))
	}
	if c.NodeLeaseDurationSeconds == 0 {
		c.NodeLeaseDurationSeconds = 40
	}
	if c.Address == "" {
		c.Address = "0.0.0.0"
	}
	if c.Port == 0 {
		c.Port = 10250
	}
	// The kubelet API's authentication and authorization (upstream's v1beta1 defaults).
	if c.Authentication.Anonymous.Enabled == nil {
		c.Authentication.Anonymous.Enabled = ptr(false)
	}
	if c.Authentication.Webhook.Enabled == nil {
		c.Authentication.Webhook.Enabled = ptr(true)
	}
	defDuration(&c.Authentication.Webhook.CacheTTL, 2*time.Minute)
	if c.Authorization.Mode == "" {
		c.Authorization.Mode = kubeletv1beta1.KubeletAuthorizationModeWebhook
	}
	defDuration(&c.Authorization.Webhook.CacheAuthorizedTTL, 5*time.Minute)
	defDuration(&c.Authorization.Webhook.CacheUnauthorizedTTL, 30*time.Second)
	if c.HealthzPort == nil {
		c.HealthzPort = ptr(int32(10248))
	}
	if c.HealthzBindAddress == "" {
		c.HealthzBindAddress = "127.0.0.1"
	}
	if c.KubeAPIQPS == nil {
		c.KubeAPIQPS = ptr(int32(50))
	}
	if c.KubeAPIBurst == 0 {
		c.KubeAPIBurst = 100
	}
	if c.EventRecordQPS == nil {
		c.EventRecordQPS = ptr(int32(50))
	}
	if c.EventBurst == 0 {
		c.EventBurst = 100
	}
	if c.RegisterNode == nil {
		c.RegisterNode = ptr(true)
	}
	if c.CgroupDriver == "" {
		c.CgroupDriver = "cgroupfs"
	}
	if c.CgroupsPerQOS == nil {
		c.CgroupsPerQOS = ptr(true)
	}
	if c.CgroupRoot == "" {
		c.CgroupRoot = "/"
	}
	if c.PodPidsLimit == nil {
		c.PodPidsLimit = ptr(int64(-1))
	}
	if c.EnforceNodeAllocatable == nil {
		c.EnforceNodeAllocatable = []string{"pods"}
	}
	if c.PodLogsDir == "" {
		c.PodLogsDir = "/var/log/pods"
	}
	if c.ResolverConfig == nil {
		c.ResolverConfig = ptr(DefaultResolvConf)
	}
	logsapi.SetRecommendedLoggingConfiguration(&c.Logging)
	// Eviction (upstream's defaults_linux.go): an evictionHard given at all replaces them,
	// unless mergeDefaultEvictionSettings fills in the signals it leaves out.
	defaults := map[string]string{
		"memory.available":   "100Mi",
		"nodefs.available":   "10%",
		"nodefs.inodesFree":  "5%",
		"imagefs.available":  "15%",
		"imagefs.inodesFree": "5%",
	}
	if c.EvictionHard == nil {
		c.EvictionHard = defaults
	} else if c.MergeDefaultEvictionSettings != nil && *c.MergeDefaultEvictionSettings {
		for k, v := range defaults {
			if _, ok := c.EvictionHard[k]; !ok {
				c.EvictionHard[k] = v
			}
		}
	}
	defDuration(&c.EvictionPressureTransitionPeriod, 5*time.Minute)
	if c.LocalStorageCapacityIsolation == nil {
		c.LocalStorageCapacityIsolation = ptr(true)
	}
}

func defDuration(d *metav1.Duration, def time.Duration) {
	if d.Duration == 0 {
		d.Duration = def
	}
}

func ptr[T any](v T) *T { return &v }

// defaultsAfterFlags fills defaults that derive from other fields, once flags are applied.
func defaultsAfterFlags(c *kubeletv1beta1.KubeletConfiguration) {
	if c.ImageServiceEndpoint == "" {
		c.ImageServiceEndpoint = c.ContainerRuntimeEndpoint
	}
}

// LoadFile reads a KubeletConfiguration file. Unknown fields are tolerated (the upstream
// kubelet only warns about them) and returned as a warning.
func LoadFile(path string) (kubeletv1beta1.KubeletConfiguration, error, error) {
	var c kubeletv1beta1.KubeletConfiguration
	data, err := os.ReadFile(path)
	if err != nil {
		return c, nil, fmt.Errorf("--config: %w", err)
	}
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(data, &tm); err != nil {
		return c, nil, fmt.Errorf("--config %s: %w", path, err)
	}
	want := kubeletv1beta1.SchemeGroupVersion.String()
	if tm.APIVersion != want || tm.Kind != "KubeletConfiguration" {
		return c, nil, fmt.Errorf("--config %s: want apiVersion %s and kind KubeletConfiguration, got %q %q", path, want, tm.APIVersion, tm.Kind)
	}
	var warning error
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		warning = fmt.Errorf("--config %s: %w", path, err)
		c = kubeletv1beta1.KubeletConfiguration{}
		if err := yaml.Unmarshal(data, &c); err != nil {
			return c, nil, fmt.Errorf("--config %s: %w", path, err)
		}
	}
	return c, warning, nil
}

// ErrHelp is returned by Parse when the user asked for --help or --version.
var ErrHelp = errors.New("help requested")

// Taints returns the taints to register the node with.
func (c *Config) Taints() []v1.Taint { return c.Kubelet.RegisterWithTaints }
