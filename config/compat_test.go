package config

import (
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
)

// docs/compatibility.md is generated from upstream.go (the upstream flags), the
// KubeletConfiguration type, and the notes below; this test fails when the file is stale.
// Regenerate it with: go test ./config -run TestCompatibilityDoc -update
var updateDoc = flag.Bool("update", false, "rewrite docs/compatibility.md")

const compatDoc = "../docs/compatibility.md"

// supportedFields are the KubeletConfiguration fields minikubelet acts on, with how.
var supportedFields = map[string]string{
	"featureGates":                               "read for `ContainerCheckpoint` (false: no `/checkpoint`) and the logging gates (`LoggingBetaOptions`, `LoggingAlphaOptions`, `ContextualLogging`); every other gate keeps v1.37's default",
	"logging":                                    "component-base's logging configuration applied to klog as upstream (`format: text` or `json`, `verbosity`, `vmodule`, `flushFrequency`, split streams)",
	"enableSystemLogHandler":                     "`/logs/` serves the node's log folder (`/var/log/`, or `--node-log-dir`); false: 405 as upstream",
	"enableSystemLogQuery":                       "the `/logs/?query=` form (upstream's NodeLogQuery: services from journalctl, else their files in the log folder; upstream's 400/406 messages)",
	"tracing":                                    "OTLP gRPC spans (service `kubelet`): `syncPod` per pod sync and one per CRI call, sampled at `samplingRatePerMillion` (component-base's tracer provider, as upstream)",
	"enableProfilingHandler":                     "Go's profiles at `/debug/pprof` on the kubelet API (authorized as `nodes/proxy`), on by default as upstream",
	"staticPodPath":                              "manifests (YAML/JSON) read every second, mirror pods in the API",
	"podLogsDir":                                 "",
	"address":                                    "",
	"port":                                       "",
	"tlsCertFile":                                "default: a self-signed certificate in `--cert-dir`",
	"tlsPrivateKeyFile":                          "",
	"tlsCipherSuites":                            "Go's cipher suite names",
	"tlsMinVersion":                              "",
	"rotateCertificates":                         "client certificate renewed at 70-90% of its lifetime (client-go's certificate manager)",
	"serverTLSBootstrap":                         "serving certificate from a `kubernetes.io/kubelet-serving` CSR (approved by an admin), kept in `<cert-dir>/kubelet-server-current.pem`, renewed at 70-90% of its lifetime; refused handshakes until issued; `tlsCertFile`, if set, is served until then; self-signed when standalone",
	"authentication.x509.clientCAFile":           "",
	"authentication.webhook.enabled":             "TokenReview",
	"authentication.webhook.cacheTTL":            "",
	"authentication.anonymous.enabled":           "",
	"authorization.mode":                         "AlwaysAllow or Webhook",
	"authorization.webhook.cacheAuthorizedTTL":   "",
	"authorization.webhook.cacheUnauthorizedTTL": "",
	"healthzPort":                                "",
	"healthzBindAddress":                         "",
	"nodeStatusUpdateFrequency":                  "",
	"nodeStatusReportFrequency":                  "",
	"nodeStatusMaxImages":                        "the largest images first, each with at most five names (digests, then tags), refreshed every 30s as upstream",
	"nodeLeaseDurationSeconds":                   "",
	"cgroupRoot":                                 "",
	"cgroupsPerQOS":                              "upstream's cgroupfs layout",
	"cgroupDriver":                               "cgroupfs, or systemd (pod cgroups as slices; containerd must use SystemdCgroup)",
	"maxPods":                                    "",
	"resolvConf":                                 "re-read for each new sandbox, as upstream; empty gives pods the node's loopback",
	"clusterDNS":                                 "ClusterFirst pods' nameservers; entries that are not IPs are skipped with a warning, as upstream",
	"clusterDomain":                              "cluster search paths and pods' FQDNs (hostname + subdomain, setHostnameAsFQDN)",
	"kubeAPIQPS":                                 "",
	"kubeAPIBurst":                               "",
	"eventRecordQPS":                             "events go through a client of their own, as upstream's (0: no limit)",
	"eventBurst":                                 "",
	"evictionHard":                               "every signal (memory, allocatable memory, nodefs and imagefs bytes and inodes, PIDs): pods evicted at once when met; memory and nodefs ones are left out of allocatable",
	"evictionSoft":                               "",
	"evictionSoftGracePeriod":                    "",
	"evictionPressureTransitionPeriod":           "",
	"evictionMaxPodGracePeriod":                  "",
	"evictionMinimumReclaim":                     "",
	"mergeDefaultEvictionSettings":               "",
	"localStorageCapacityIsolation":              "ephemeral-storage limits and emptyDir sizeLimit enforced by eviction",
	"volumeStatsAggPeriod":                       "how long measured volume usage is reused",
	"containerLogMaxSize":                        "",
	"containerLogMaxFiles":                       "",
	"containerLogMonitorInterval":                "",
	"systemReserved":                             "subtracted from allocatable and, with enforceNodeAllocatable [pods], from the kubepods cgroup's limits",
	"kubeReserved":                               "subtracted from allocatable and, with enforceNodeAllocatable [pods], from the kubepods cgroup's limits",
	"podPidsLimit":                               "the pod cgroup's pids.max (default -1: no limit)",
	"enforceNodeAllocatable":                     "pods (default): the kubepods cgroup gets capacity less kubeReserved and systemReserved (CPU shares, memory, PIDs); none: capacity. The system-reserved and kube-reserved levels are accepted and not enforced",
	"allowedUnsafeSysctls":                       "",
	"registerWithTaints":                         "",
	"containerRuntimeEndpoint":                   "unix sockets",
	"imageServiceEndpoint":                       "unix sockets",
	"imageMinimumGCAge":                          "unused images younger than this are kept (default 2m)",
	"imageMaximumGCAge":                          "unused images older than this are removed whatever the disk usage (default 0: off)",
	"imageGCHighThresholdPercent":                "image filesystem usage (CRI ImageFsInfo, statfs for the capacity) at which unused images are removed, least recently used first, every 5 minutes (default 85)",
	"imageGCLowThresholdPercent":                 "usage image garbage collection frees down to (default 80)",
	"userNamespaces.idsPerPod":                   "the IDs of each `hostUsers: false` pod's user namespace (default 65536; a multiple of 65536, as upstream's validation)",
}

// ignoredFields are read and not acted on, with why.
var ignoredFields = map[string]string{
	"enableServer":                               "the kubelet API always serves",
	"syncFrequency":                              "pods sync on events and a 5s relist",
	"fileCheckFrequency":                         "the static pod folder is read every second",
	"httpCheckFrequency":                         "no static pods from a URL",
	"staticPodURL":                               "no static pods from a URL",
	"staticPodURLHeader":                         "no static pods from a URL",
	"readOnlyPort":                               "no read-only port (upstream's default is off too)",
	"tlsCurvePreferences":                        "Go's curve preferences",
	"registryPullQPS":                            "pulls are not rate-limited",
	"registryBurst":                              "pulls are not rate-limited",
	"imagePullCredentialsVerificationPolicy":     "credentials are not re-verified for images already present",
	"preloadedImagesVerificationAllowlist":       "credentials are not re-verified for images already present",
	"enableDebuggingHandlers":                    "logs, exec, attach and port-forward are always served",
	"enableContentionProfiling":                  "no profiling",
	"oomScoreAdj":                                "the process's OOM score is left as started",
	"streamingConnectionIdleTimeout":             "streams end when the client or the runtime ends them",
	"kubeletCgroups":                             "processes are not moved into cgroups",
	"systemCgroups":                              "processes are not moved into cgroups",
	"cpuManagerPolicy":                           "no CPU manager",
	"singleProcessOOMKill":                       "memory.oom.group is left to the runtime",
	"cpuManagerPolicyOptions":                    "no CPU manager",
	"cpuManagerReconcilePeriod":                  "no CPU manager",
	"memoryManagerPolicy":                        "no memory manager",
	"topologyManagerPolicy":                      "no topology manager",
	"topologyManagerScope":                       "no topology manager",
	"topologyManagerPolicyOptions":               "no topology manager",
	"qosReserved":                                "no QoS memory reservation",
	"runtimeRequestTimeout":                      "CRI calls time out after 2m (upstream's default)",
	"hairpinMode":                                "the CNI configuration decides",
	"podCIDR":                                    "pod addresses come from the CNI configuration",
	"runOnce":                                    "no run-once mode",
	"cpuCFSQuota":                                "CPU limits are always enforced",
	"cpuCFSQuotaPeriod":                          "the CFS period is 100ms",
	"maxOpenFiles":                               "the process's limit is left as started",
	"contentType":                                "client-go's default (JSON)",
	"serializeImagePulls":                        "each pod worker pulls its own images",
	"maxParallelImagePulls":                      "each pod worker pulls its own images",
	"podsPerCore":                                "capacity is `maxPods`",
	"enableControllerAttachDetach":               "no attachable volumes",
	"protectKernelDefaults":                      "kernel settings are not checked",
	"makeIPTablesUtilChains":                     "no iptables rules are made",
	"iptablesMasqueradeBit":                      "no iptables rules are made",
	"iptablesDropBit":                            "no iptables rules are made",
	"failSwapOn":                                 "swap is not checked",
	"memorySwap.swapBehavior":                    "containers get no swap settings",
	"containerLogMaxWorkers":                     "one rotation loop",
	"configMapAndSecretChangeDetectionStrategy":  "configMap and secret volumes are refreshed every 15s",
	"reservedSystemCPUs":                         "allocatable is not enforced with cgroups",
	"showHiddenMetricsForVersion":                "no hidden metrics",
	"systemReservedCgroup":                       "allocatable is not enforced with cgroups",
	"kubeReservedCgroup":                         "allocatable is not enforced with cgroups",
	"defaultPodSysctls":                          "pods get only their own sysctls",
	"volumePluginDir":                            "no FlexVolume plugins",
	"providerID":                                 "no cloud provider",
	"kernelMemcgNotification":                    "memory pressure is polled",
	"shutdownGracePeriod":                        "no graceful node shutdown",
	"shutdownGracePeriodCriticalPods":            "no graceful node shutdown",
	"shutdownGracePeriodByPodPriority":           "no graceful node shutdown",
	"crashLoopBackOff.maxContainerRestartPeriod": "the crash back-off cap is 300s",
	"reservedMemory":                             "no memory manager",
	"enableDebugFlagsHandler":                    "no /debug/flags handler",
	"seccompDefault":                             "pods without a seccomp profile run Unconfined, as upstream's default",
	"memoryThrottlingFactor":                     "no memory QoS",
	"memoryReservationPolicy":                    "no memory QoS",
	"registerNode":                               "the node always registers",
	"failCgroupV1":                               "cgroup v1 and v2 are both used",
}

// flagNotes are notes for flags that set no config field minikubelet has a note for
// (flag-only settings, the logging flags), and ignoredFlagNotes why such flags are ignored.
var flagNotes = map[string]string{
	"config":               "unknown fields are a warning",
	"kubeconfig":           "written after a TLS bootstrap",
	"bootstrap-kubeconfig": "TLS bootstrap: a CertificateSigningRequest for `system:node:<name>`",
	"cert-dir":             "default `<root-dir>/pki`",
	"root-dir":             "default `/var/lib/minikubelet`",
	"hostname-override":    "",
	"node-ip":              "one address",
	"node-labels":          "",
	"help":                 "",
	"version":              "",
	"v":                    "",
	"vmodule":              "",
}

var ignoredFlagNotes = map[string]string{
	"cloud-provider":          "no cloud provider",
	"config-dir":              "no drop-in configuration folder",
	"exit-on-lock-contention": "no lock file",
	"lock-file":               "no lock file",
	"experimental-allocatable-ignore-eviction": "deprecated upstream",
	"experimental-mounter-path":                "deprecated upstream",
	"maximum-dead-containers":                  "deprecated upstream; upstream's default policy applies (one dead instance per container)",
	"maximum-dead-containers-per-container":    "deprecated upstream; upstream's default policy applies (one dead instance per container)",
	"minimum-container-ttl-duration":           "deprecated upstream",
	"housekeeping-interval":                    "no cAdvisor: stats come from CRI and /proc",
	"image-credential-provider-bin-dir":        "no credential provider plugins (pull secrets only)",
	"image-credential-provider-config":         "no credential provider plugins (pull secrets only)",
	"runtime-cgroups":                          "processes are not moved into cgroups",
	"seccomp-default":                          "pods without a seccomp profile run Unconfined",
	"pod-infra-container-image":                "removed upstream; the sandbox image is the runtime's setting",
	"container-runtime":                        "removed upstream",
}

// ownFlags are minikubelet's flags the upstream kubelet does not have, and why.
var ownFlags = map[string]string{
	"node-log-dir":       "the folder the kubelet API serves at `/logs/` (default `/var/log/`, upstream's fixed folder); test beds give each node its own",
	"image-gc-period":    "hidden: how often image garbage collection runs (default 5m, upstream's fixed period); test beds shorten it",
	"container-logs-dir": "where the `<pod>_<namespace>_<container>-<id>.log` symlinks go (default `/var/log/containers`, upstream's fixed folder); test beds running several nodes on one host give each its own",
}

// configFields lists the KubeletConfiguration's JSON field paths, nested into the kubelet
// config package's own structs (authentication.x509.clientCAFile) and not further.
func configFields() []string {
	var out []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.Anonymous || name == "" || name == "-" {
				continue
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && ft.PkgPath() == t.PkgPath() {
				walk(ft, prefix+name+".")
				continue
			}
			out = append(out, prefix+name)
		}
	}
	walk(reflect.TypeOf(kubeletv1beta1.KubeletConfiguration{}), "")
	return out
}

// boundFlags are the flags minikubelet implements (what Parse binds, hidden ones aside).
func boundFlags() map[string]bool {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	c := &Config{}
	SetDefaults(&c.Kubelet)
	c.bindFlags(fs)
	fs.Bool("version", false, "")
	fs.BoolP("help", "h", false, "")
	bound := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) { bound[f.Name] = true })
	return bound
}

func TestCompatibilityNotesComplete(t *testing.T) {
	for _, f := range configFields() {
		_, s := supportedFields[f]
		_, i := ignoredFields[f]
		if s == i {
			t.Errorf("field %s: want a note in exactly one of supportedFields and ignoredFields (supported %v, ignored %v)", f, s, i)
		}
	}
	fields := configFields()
	for f := range supportedFields {
		if !slices.Contains(fields, f) {
			t.Errorf("supportedFields: %s is no KubeletConfiguration field", f)
		}
	}
	for f := range ignoredFields {
		if !slices.Contains(fields, f) {
			t.Errorf("ignoredFields: %s is no KubeletConfiguration field", f)
		}
	}
	bound := boundFlags()
	upstream := map[string]bool{}
	for _, u := range append(slices.Clone(upstreamFlags), removedUpstreamFlags...) {
		upstream[u.Name] = true
		if _, ok := supportedFields[u.Field]; ok && !bound[u.Name] {
			t.Errorf("--%s sets %s, which is supported: bind the flag", u.Name, u.Field)
		}
		if bound[u.Name] {
			continue
		}
		if _, ok := ignoredFields[u.Field]; !ok && ignoredFlagNotes[u.Name] == "" {
			t.Errorf("--%s is ignored: say why in ignoredFlagNotes (or ignoredFields)", u.Name)
		}
	}
	for name := range bound {
		if !upstream[name] && ownFlags[name] == "" {
			t.Errorf("--%s is not an upstream kubelet flag", name)
		}
	}
}

// flagStatus says whether minikubelet acts on an upstream flag, and a word on how or why
// not: a flag it binds is supported unless the field it sets is one it ignores.
func flagStatus(u upstreamFlag, bound map[string]bool) (string, string) {
	if !bound[u.Name] {
		if n := ignoredFlagNotes[u.Name]; n != "" {
			return "ignored", n
		}
		return "ignored", ignoredFields[u.Field]
	}
	if n, ok := flagNotes[u.Name]; ok {
		return "supported", n
	}
	if n, ok := ignoredFields[u.Field]; ok {
		return "ignored", n
	}
	return "supported", supportedFields[u.Field]
}

// compatibilityDoc renders docs/compatibility.md.
func compatibilityDoc() string {
	bound := boundFlags()
	var b strings.Builder
	flags := append(slices.Clone(upstreamFlags), removedUpstreamFlags...)
	fields := configFields()
	nFlags, nFields := 0, 0
	for _, u := range flags {
		if status, _ := flagStatus(u, bound); status == "supported" {
			nFlags++
		}
	}
	for _, f := range fields {
		if _, ok := supportedFields[f]; ok {
			nFields++
		}
	}
	fmt.Fprintf(&b, `# Compatibility with the upstream kubelet v1.37

<!-- Generated by `+"`go test ./config -run TestCompatibilityDoc -update`"+` from config/upstream.go,
the KubeletConfiguration type and the notes in config/compat_test.go. Do not edit by hand. -->

minikubelet takes the upstream kubelet's command line and `+"`KubeletConfiguration`"+` file
(`+"`kubelet.config.k8s.io/v1beta1`"+`), so kubeadm's files and systemd drop-ins work unchanged:

- a flag minikubelet does not implement is accepted and ignored, and all of them are named in
  one warning line at start-up; a flag the upstream kubelet does not know either is an error;
- a field it does not act on is read (its type is checked) and ignored; an unknown field is a
  warning.

%d of the %d flags below are supported (%d upstream flags and %d removed ones older kubeadm
files still pass), and %d of the %d configuration fields.

## Flags

| flag | config field | minikubelet | note |
|---|---|---|---|
`, nFlags, len(flags), len(upstreamFlags), len(removedUpstreamFlags), nFields, len(fields))
	for _, u := range flags {
		field := ""
		if u.Field != "" {
			field = "`" + u.Field + "`"
		}
		status, note := flagStatus(u, bound)
		fmt.Fprintf(&b, "| `--%s` | %s | %s | %s |\n", u.Name, field, status, note)
	}
	b.WriteString("\n## minikubelet's own flags\n\n| flag | note |\n|---|---|\n")
	for _, name := range slices.Sorted(maps.Keys(ownFlags)) {
		fmt.Fprintf(&b, "| `--%s` | %s |\n", name, ownFlags[name])
	}
	b.WriteString("\n## KubeletConfiguration fields\n\n| field | minikubelet | note |\n|---|---|---|\n")
	for _, f := range fields {
		if n, ok := supportedFields[f]; ok {
			fmt.Fprintf(&b, "| `%s` | supported | %s |\n", f, n)
		} else {
			fmt.Fprintf(&b, "| `%s` | ignored | %s |\n", f, ignoredFields[f])
		}
	}
	return b.String()
}

func TestCompatibilityDoc(t *testing.T) {
	want := compatibilityDoc()
	if *updateDoc {
		if err := os.WriteFile(compatDoc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(compatDoc)
	if err != nil || string(got) != want {
		t.Errorf("%s is stale (%v): regenerate it with go test ./config -run TestCompatibilityDoc -update", compatDoc, err)
	}
}

// Parse must know every upstream flag: the ones minikubelet implements and the ignored ones.
func TestEveryUpstreamFlagParses(t *testing.T) {
	bound := boundFlags()
	for _, u := range append(slices.Clone(upstreamFlags), removedUpstreamFlags...) {
		if u.Name == "help" || u.Name == "version" {
			continue
		}
		if !bound[u.Name] {
			arg := "--" + u.Name + "=x"
			if u.Bool {
				arg = "--" + u.Name
			}
			if _, _, err := Parse([]string{arg, "--kubeconfig=/k"}, io.Discard); err != nil {
				t.Errorf("Parse(%s): %v", arg, err)
			}
		}
	}
}
