package testbed

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
)

// UpstreamNodeIP is the address the upstream kubelet reports: it refuses a loopback
// --node-ip, so the bed adds this one to lo (it stays on this machine).
const UpstreamNodeIP = "10.99.0.1"

// UpstreamOptions change the upstream kubelet's configuration from the bed's default.
type UpstreamOptions struct {
	// CgroupRoot, when set, turns on upstream's own defaults cgroupsPerQOS: true and
	// enforceNodeAllocatable: [pods], with the pod cgroups under this root, which must
	// exist in every cgroup hierarchy. The upstream kubelet kills whatever runs in a pod
	// cgroup under <root>/kubepods that it does not know, so the root must be this
	// kubelet's alone (not the default /, which other agents on the machine may use).
	CgroupRoot string
	// MaxPods is maxPods (0: upstream's default, 110).
	MaxPods int
	// Flags are appended to the command line (upstream's names), overriding the config.
	Flags []string
	// Endpoint is the CRI endpoint (default: the bed's containerd), e.g. a NodeRuntime's.
	Endpoint string
}

// StartUpstreamKubelet starts the pinned upstream kubelet (test/tools) as node name on the
// bed's containerd, configured as on this machine kind it must be: cgroup v1 allowed,
// no QoS cgroups, cgroupfs, the same loopback-only resolver and no other listeners.
// It owns every pod in the runtime, so it must not run beside a minikubelet. extra flags
// (upstream's names) are appended, overriding the config file.
func (b *Bed) StartUpstreamKubelet(name string, extra ...string) (*Kubelet, error) {
	return b.StartUpstreamKubeletWith(name, UpstreamOptions{Flags: extra})
}

// StartUpstreamKubeletWith is StartUpstreamKubelet with options.
func (b *Bed) StartUpstreamKubeletWith(name string, o UpstreamOptions) (*Kubelet, error) {
	if err := b.AddProxyableNodeIP(); err != nil {
		return nil, err
	}
	kc, err := b.NodeKubeconfig(name)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(b.Dir, "upstream-kubelet-"+name)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	resolv := filepath.Join(root, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cfgExtra := "cgroupsPerQOS: false\nenforceNodeAllocatable: []\n"
	if o.CgroupRoot != "" {
		cfgExtra = fmt.Sprintf("cgroupsPerQOS: true\nenforceNodeAllocatable: [pods]\ncgroupRoot: %s\n", o.CgroupRoot)
	}
	if o.MaxPods > 0 {
		cfgExtra += fmt.Sprintf("maxPods: %d\n", o.MaxPods)
	}
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: %s
cgroupDriver: cgroupfs
%sfailCgroupV1: false
failSwapOn: false
resolvConf: %s
podLogsDir: %s
port: %d
readOnlyPort: 0
healthzPort: 0
serializeImagePulls: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %s}
authorization: {mode: Webhook}
evictionHard: {}
imageGCHighThresholdPercent: 100
`, cmp.Or(o.Endpoint, b.CRIEndpoint()), cfgExtra, resolv, filepath.Join(root, "pod-logs"), port, b.PKI.CAFile())
	cfgFile := filepath.Join(root, "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	args := []string{
		"--config=" + cfgFile, "--kubeconfig=" + kc, "--root-dir=" + root, "--cert-dir=" + filepath.Join(root, "pki"),
		"--hostname-override=" + name, "--node-ip=" + UpstreamNodeIP, "--v=1",
	}
	args = append(args, o.Flags...)
	p, err := b.start("kubelet-"+name, filepath.Join(b.ToolsBin, "kubelet"), args, nil)
	if err != nil {
		return nil, err
	}
	return &Kubelet{Proc: p, NodeName: name, Kubeconfig: kc, RootDir: root, Args: args, Port: port, upstream: true}, nil
}
