package config

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	v1 "k8s.io/api/core/v1"
	cliflag "k8s.io/component-base/cli/flag"
	logsapi "k8s.io/component-base/logs/api/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"

	"github.com/minikubelet/minikubelet/pkg/kubelet/dns"
	"github.com/minikubelet/minikubelet/pkg/version"
)

// legacyDefaults are upstream's defaults for a kubelet run with flags only (no --config):
// the kubelet API lets anonymous requests in and authorizes everything, as the kubelet
// did before its config file existed.
func legacyDefaults(k *kubeletv1beta1.KubeletConfiguration) {
	k.Authentication.Anonymous.Enabled = ptr(true)
	k.Authentication.Webhook.Enabled = ptr(false)
	k.Authorization.Mode = kubeletv1beta1.KubeletAuthorizationModeAlwaysAllow
}

// Parse builds a Config from the upstream kubelet's flag names. As upstream: the --config file
// is loaded and defaulted first, then every flag given on the command line overrides it.
// It returns warnings (things tolerated but worth telling) alongside the config.
func Parse(args []string, out io.Writer) (*Config, []string, error) {
	// First pass: only --config, so the file can be loaded before flags bind to its fields.
	pre := pflag.NewFlagSet("pre", pflag.ContinueOnError)
	pre.ParseErrorsAllowlist.UnknownFlags = true
	pre.Usage = func() {}
	pre.SetOutput(io.Discard)
	file := pre.String("config", "", "")
	pre.BoolP("help", "h", false, "")
	_ = pre.Parse(args)

	c := &Config{ConfigFile: *file, RootDir: DefaultRootDir, ContainerLogsDir: "/var/log/containers", NodeLogDir: "/var/log/",
		ImageGCPeriod: DefaultImageGCPeriod}
	var warnings []string
	if c.ConfigFile != "" {
		k, warn, err := LoadFile(c.ConfigFile)
		if err != nil {
			return nil, nil, err
		}
		if warn != nil {
			warnings = append(warnings, warn.Error())
		}
		c.Kubelet = k
	} else {
		legacyDefaults(&c.Kubelet)
	}
	SetDefaults(&c.Kubelet)

	fs := pflag.NewFlagSet("minikubelet", pflag.ContinueOnError)
	fs.SetOutput(out)
	c.bindFlags(fs)
	showVersion := fs.Bool("version", false, "Print version and exit.")
	ignored := addIgnoredUpstreamFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: minikubelet [flags]\n\nA small Kubernetes node agent. Flags use the upstream kubelet's names.\n\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return nil, nil, ErrHelp
		}
		return nil, nil, err
	}
	if *showVersion {
		fmt.Fprintf(out, "minikubelet %s\n", version.Version)
		return nil, nil, ErrHelp
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	defaultsAfterFlags(&c.Kubelet)
	if c.CertDir == "" {
		c.CertDir = filepath.Join(c.RootDir, "pki")
	}
	var set []string
	fs.Visit(func(f *pflag.Flag) {
		if ignored[f.Name] {
			set = append(set, "--"+f.Name)
		}
	})
	if len(set) > 0 {
		warnings = append(warnings, "ignoring upstream kubelet flags minikubelet does not implement: "+strings.Join(set, ", "))
	}
	// Upstream starts with such entries, logging and skipping them; so does minikubelet.
	if _, bad := dns.ParseClusterDNS(c.Kubelet.ClusterDNS); len(bad) > 0 {
		warnings = append(warnings, fmt.Sprintf("clusterDNS (--cluster-dns): %q: not IP addresses, ignored (as the upstream kubelet does)", bad))
	}
	return c, warnings, nil
}

// addIgnoredUpstreamFlags registers, hidden, every upstream kubelet flag (upstream.go) fs
// does not define, taking any value and doing nothing with it; it returns their names.
// Flags nobody knows stay an error.
func addIgnoredUpstreamFlags(fs *pflag.FlagSet) map[string]bool {
	ignored := map[string]bool{}
	for _, u := range append(upstreamFlags[:len(upstreamFlags):len(upstreamFlags)], removedUpstreamFlags...) {
		if fs.Lookup(u.Name) != nil || u.Name == "help" { // pflag answers --help itself
			continue
		}
		f := fs.VarPF(new(ignoredValue), u.Name, "", "upstream kubelet flag, ignored")
		if u.Bool {
			f.NoOptDefVal = "true"
		}
		f.Hidden = true
		ignored[u.Name] = true
	}
	return ignored
}

// ignoredValue takes any value of an ignored upstream flag.
type ignoredValue string

func (v *ignoredValue) String() string     { return string(*v) }
func (v *ignoredValue) Set(s string) error { *v = ignoredValue(s); return nil }
func (v *ignoredValue) Type() string       { return "string" }

func (c *Config) bindFlags(fs *pflag.FlagSet) {
	k := &c.Kubelet
	fs.StringVar(&c.ConfigFile, "config", c.ConfigFile, "Path to a KubeletConfiguration file (kubelet.config.k8s.io/v1beta1). Flags override its fields.")
	fs.StringVar(&c.KubeconfigPath, "kubeconfig", c.KubeconfigPath, "Path to a kubeconfig file with the API server's address and the node's credentials.")
	fs.StringVar(&c.BootstrapKubeconfigPath, "bootstrap-kubeconfig", c.BootstrapKubeconfigPath, "Path to a kubeconfig (e.g. with a bootstrap token) used to request the node's client certificate when --kubeconfig does not exist or its certificate expired; --kubeconfig is then written, pointing at <cert-dir>/kubelet-client-current.pem.")
	fs.StringVar(&c.CertDir, "cert-dir", c.CertDir, "Directory of the node's client certificate (kubelet-client-current.pem) and its serving certificate (kubelet-server-current.pem, or the self-signed kubelet.crt) (default <root-dir>/pki).")
	fs.BoolVar(&k.RotateCertificates, "rotate-certificates", k.RotateCertificates, "Renew the node's client certificate with a CertificateSigningRequest before it expires.")
	fs.BoolVar(&k.ServerTLSBootstrap, "rotate-server-certificates", k.ServerTLSBootstrap, "Request the kubelet API's serving certificate with a kubernetes.io/kubelet-serving CertificateSigningRequest (to be approved by an admin) and renew it before it expires; kept in <cert-dir>/kubelet-server-current.pem.")
	fs.StringVar(&c.RootDir, "root-dir", c.RootDir, "Directory for minikubelet's files (pod volumes, state).")
	fs.StringVar(&c.ContainerLogsDir, "container-logs-dir", c.ContainerLogsDir, "Directory of the <pod>_<namespace>_<container>-<id>.log symlinks log shippers read (minikubelet's own flag; upstream's is fixed).")
	fs.StringVar(&c.HostnameOverride, "hostname-override", c.HostnameOverride, "Node name to use instead of the hostname.")
	fs.StringVar(&c.NodeIP, "node-ip", c.NodeIP, "IP address of the node (default: the first non-loopback address of the host).")
	fs.Var(labelsFlag{&c.NodeLabels}, "node-labels", "Labels to add when registering the node, as key=value pairs separated by commas.")
	fs.Var(taintsFlag{&k.RegisterWithTaints}, "register-with-taints", "Taints to register the node with, as key=value:Effect separated by commas.")
	fs.StringVar(&k.ContainerRuntimeEndpoint, "container-runtime-endpoint", k.ContainerRuntimeEndpoint, "CRI endpoint (unix socket) of the container runtime.")
	fs.StringVar(&k.ImageServiceEndpoint, "image-service-endpoint", k.ImageServiceEndpoint, "CRI image service endpoint (default: the runtime endpoint).")
	fs.Int32Var(&k.MaxPods, "max-pods", k.MaxPods, "Number of pods the node can run.")
	fs.StringVar(&k.ContainerLogMaxSize, "container-log-max-size", k.ContainerLogMaxSize, "Size at which a container's log file is rotated (quantity, e.g. 10Mi).")
	fs.Int32Var(k.ContainerLogMaxFiles, "container-log-max-files", *k.ContainerLogMaxFiles, "Log files kept per container, the live one included (at least 2).")
	fs.StringVar(&k.StaticPodPath, "pod-manifest-path", k.StaticPodPath, "Folder of static pod manifests (YAML/JSON), run without the API server and mirrored into it.")
	fs.StringSliceVar(&k.AllowedUnsafeSysctls, "allowed-unsafe-sysctls", k.AllowedUnsafeSysctls, "Unsafe sysctls (names, or prefixes ending in *) pods may set besides the safe ones.")
	fs.DurationVar(&k.NodeStatusUpdateFrequency.Duration, "node-status-update-frequency", k.NodeStatusUpdateFrequency.Duration, "How often the node status is computed (and posted when changed).")
	fs.Int32Var(k.NodeStatusMaxImages, "node-status-max-images", *k.NodeStatusMaxImages, "Images reported in the node status, largest first (-1: all of them).")
	fs.BoolVar(k.RegisterNode, "register-node", *k.RegisterNode, "Register the Node object with the API server.")
	fs.StringVar(&k.Address, "address", k.Address, "IP address the kubelet API serves on (0.0.0.0 for all interfaces).")
	fs.Int32Var(&k.Port, "port", k.Port, "Port of the kubelet API (HTTPS).")
	fs.StringVar(&k.TLSCertFile, "tls-cert-file", k.TLSCertFile, "Serving certificate of the kubelet API (default: a self-signed one in <root-dir>/pki).")
	fs.StringVar(&k.TLSPrivateKeyFile, "tls-private-key-file", k.TLSPrivateKeyFile, "Private key of --tls-cert-file.")
	fs.StringVar(&k.TLSMinVersion, "tls-min-version", k.TLSMinVersion, "Minimum TLS version of the kubelet API (VersionTLS12, VersionTLS13).")
	fs.StringSliceVar(&k.TLSCipherSuites, "tls-cipher-suites", k.TLSCipherSuites, "Cipher suites of the kubelet API (Go names; default: Go's).")
	fs.StringVar(&k.Authentication.X509.ClientCAFile, "client-ca-file", k.Authentication.X509.ClientCAFile, "CA bundle that client certificates of the kubelet API are verified with (user = CN, groups = O).")
	fs.BoolVar(k.Authentication.Anonymous.Enabled, "anonymous-auth", *k.Authentication.Anonymous.Enabled, "Let requests without credentials in as system:anonymous (group system:unauthenticated).")
	fs.BoolVar(k.Authentication.Webhook.Enabled, "authentication-token-webhook", *k.Authentication.Webhook.Enabled, "Authenticate bearer tokens with TokenReviews.")
	fs.DurationVar(&k.Authentication.Webhook.CacheTTL.Duration, "authentication-token-webhook-cache-ttl", k.Authentication.Webhook.CacheTTL.Duration, "How long TokenReview answers are cached.")
	fs.StringVar((*string)(&k.Authorization.Mode), "authorization-mode", string(k.Authorization.Mode), "Authorization of the kubelet API: AlwaysAllow or Webhook (SubjectAccessReviews).")
	fs.DurationVar(&k.Authorization.Webhook.CacheAuthorizedTTL.Duration, "authorization-webhook-cache-authorized-ttl", k.Authorization.Webhook.CacheAuthorizedTTL.Duration, "How long allowing SubjectAccessReview answers are cached.")
	fs.DurationVar(&k.Authorization.Webhook.CacheUnauthorizedTTL.Duration, "authorization-webhook-cache-unauthorized-ttl", k.Authorization.Webhook.CacheUnauthorizedTTL.Duration, "How long denying SubjectAccessReview answers are cached.")
	fs.Int32Var(k.HealthzPort, "healthz-port", *k.HealthzPort, "Port of the plain-HTTP /healthz endpoint; 0 disables it.")
	fs.StringVar(&k.HealthzBindAddress, "healthz-bind-address", k.HealthzBindAddress, "Address of the /healthz endpoint.")
	fs.Int32Var(k.KubeAPIQPS, "kube-api-qps", *k.KubeAPIQPS, "Queries per second to the API server.")
	fs.Int32Var(&k.KubeAPIBurst, "kube-api-burst", k.KubeAPIBurst, "Burst of queries to the API server.")
	fs.Int32Var(k.EventRecordQPS, "event-qps", *k.EventRecordQPS, "Events sent per second to the API server, on a client of their own (0: no limit).")
	fs.Int32Var(&k.EventBurst, "event-burst", k.EventBurst, "Burst of events sent to the API server.")
	fs.StringVar(k.ResolverConfig, "resolv-conf", *k.ResolverConfig, "Resolver file pods with dnsPolicy Default get (and ClusterFirst ones its search domains); empty gives them the node's loopback.")
	fs.StringSliceVar(&k.ClusterDNS, "cluster-dns", k.ClusterDNS, "Comma-separated IP addresses (IPv4/IPv6) of the cluster DNS: the nameservers of pods with dnsPolicy ClusterFirst. Without it those pods fall back to Default.")
	fs.StringVar(&k.ClusterDomain, "cluster-domain", k.ClusterDomain, "Cluster domain: ClusterFirst pods search <ns>.svc.<domain>, svc.<domain> and <domain> before the node's search domains; pods' FQDNs end in it.")
	fs.BoolVar(k.CgroupsPerQOS, "cgroups-per-qos", *k.CgroupsPerQOS, "Put each pod in its own cgroup under <cgroup-root>/kubepods[/burstable|/besteffort].")
	fs.StringVar(&k.CgroupRoot, "cgroup-root", k.CgroupRoot, "Root cgroup for pods.")
	fs.Var(cliflag.NewMapStringString(&k.KubeReserved), "kube-reserved", "Resources reserved for Kubernetes components (cpu=200m,memory=500Mi,ephemeral-storage=1Gi), left out of allocatable.")
	fs.Var(cliflag.NewMapStringString(&k.SystemReserved), "system-reserved", "Resources reserved for the system (cpu=200m,memory=500Mi,ephemeral-storage=1Gi), left out of allocatable.")
	fs.Var(cliflag.NewLangleSeparatedMapStringString(&k.EvictionHard), "eviction-hard", "Hard eviction thresholds (memory.available<100Mi,nodefs.available<10%,...): pods are evicted at once when one is met; memory and nodefs ones are left out of allocatable.")
	fs.DurationVar(&k.VolumeStatsAggPeriod.Duration, "volume-stats-agg-period", k.VolumeStatsAggPeriod.Duration, "How long a volume's measured disk usage is reused (stats, local storage limits).")
	fs.BoolVar(k.LocalStorageCapacityIsolation, "local-storage-capacity-isolation", *k.LocalStorageCapacityIsolation, "Enforce ephemeral-storage limits and emptyDir sizeLimit by evicting pods over them.")
	fs.Var(cliflag.NewLangleSeparatedMapStringString(&k.EvictionSoft), "eviction-soft", "Soft eviction thresholds (memory.available<1.5Gi): pods are evicted when one is met for its grace period.")
	fs.Var(cliflag.NewMapStringString(&k.EvictionSoftGracePeriod), "eviction-soft-grace-period", "Grace periods of the soft eviction thresholds (memory.available=1m30s).")
	fs.Var(cliflag.NewMapStringString(&k.EvictionMinimumReclaim), "eviction-minimum-reclaim", "How much more than a met threshold must be free again before it counts as resolved (memory.available=0Mi,nodefs.available=500Mi).")
	fs.DurationVar(&k.EvictionPressureTransitionPeriod.Duration, "eviction-pressure-transition-period", k.EvictionPressureTransitionPeriod.Duration, "How long a pressure condition stays after its threshold was last met.")
	fs.Int32Var(&k.EvictionMaxPodGracePeriod, "eviction-max-pod-grace-period", k.EvictionMaxPodGracePeriod, "Longest grace period (seconds) of a pod evicted for a soft threshold.")
	fs.Int64Var(k.PodPidsLimit, "pod-max-pids", *k.PodPidsLimit, "Maximum number of processes in a pod (the pod cgroup's pids.max); -1: no limit.")
	fs.StringSliceVar(&k.EnforceNodeAllocatable, "enforce-node-allocatable", k.EnforceNodeAllocatable, "Levels of allocatable enforcement: pods (the kubepods cgroup limited to capacity less kubeReserved and systemReserved), or none.")
	fs.StringVar(&k.CgroupDriver, "cgroup-driver", k.CgroupDriver, "Cgroup driver: cgroupfs or systemd (pod cgroups as systemd slices; the runtime must use systemd cgroups too).")

	fs.Var(cliflag.NewMapStringBool(&k.FeatureGates), "feature-gates", "Feature gates, as key=true|false pairs separated by commas (merged into featureGates); minikubelet reads ContainerCheckpoint and the logging gates.")
	fs.Int32Var(k.ImageGCHighThresholdPercent, "image-gc-high-threshold", *k.ImageGCHighThresholdPercent, "Percent of the image filesystem in use at which unused images are garbage collected (0-100; 100 with imageMaximumGCAge 0 disables image GC).")
	fs.Int32Var(k.ImageGCLowThresholdPercent, "image-gc-low-threshold", *k.ImageGCLowThresholdPercent, "Percent of the image filesystem in use image garbage collection frees down to (0-100, below --image-gc-high-threshold).")
	fs.DurationVar(&k.ImageMinimumGCAge.Duration, "minimum-image-ttl-duration", k.ImageMinimumGCAge.Duration, "Minimum age of an unused image before it may be garbage collected.")
	fs.DurationVar(&c.ImageGCPeriod, "image-gc-period", c.ImageGCPeriod, "How often image garbage collection runs (test beds only; upstream's is fixed at 5m).")
	_ = fs.MarkHidden("image-gc-period")
	fs.StringVar(&c.NodeLogDir, "node-log-dir", c.NodeLogDir, "Folder the kubelet API serves at /logs/ (upstream's fixed /var/log/).")
	// -v, --vmodule, --logging-format and the --log-* flags set the logging section, as
	// upstream's (applied to klog by ApplyLogging).
	logsapi.AddFlags(&k.Logging, fs)
}

// labelsFlag parses k=v,k2=v2 into a map (upstream's mapStringString flag).
type labelsFlag struct{ m *map[string]string }

func (f labelsFlag) String() string {
	if f.m == nil || *f.m == nil {
		return ""
	}
	var parts []string
	for k, v := range *f.m {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}
func (f labelsFlag) Type() string { return "mapStringString" }
func (f labelsFlag) Set(s string) error {
	if *f.m == nil {
		*f.m = map[string]string{}
	}
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("malformed pair %q, expect key=value", kv)
		}
		(*f.m)[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return nil
}

// taintsFlag parses key=value:Effect,key:Effect (upstream's --register-with-taints).
type taintsFlag struct{ t *[]v1.Taint }

func (f taintsFlag) String() string {
	var parts []string
	for _, t := range *f.t {
		parts = append(parts, t.ToString())
	}
	return strings.Join(parts, ",")
}
func (f taintsFlag) Type() string { return "[]api.Taint" }
func (f taintsFlag) Set(s string) error {
	*f.t = nil
	for _, spec := range strings.Split(s, ",") {
		if spec = strings.TrimSpace(spec); spec == "" {
			continue
		}
		t, err := ParseTaint(spec)
		if err != nil {
			return err
		}
		*f.t = append(*f.t, t)
	}
	return nil
}

// ParseTaint parses one "key[=value]:Effect".
func ParseTaint(spec string) (v1.Taint, error) {
	kv, effect, ok := strings.Cut(spec, ":")
	if !ok || effect == "" {
		return v1.Taint{}, fmt.Errorf("invalid taint %q: expect key[=value]:Effect", spec)
	}
	k, v, _ := strings.Cut(kv, "=")
	return v1.Taint{Key: k, Value: v, Effect: v1.TaintEffect(effect)}, nil
}
