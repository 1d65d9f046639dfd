package cluster

import (
	"fmt"
	"strings"
)

// The kubelet as the Kubernetes packages install it for kubeadm: the binary at
// /usr/bin/kubelet, kubelet.service and its 10-kubeadm.conf drop-in. kubeadm writes
// /var/lib/kubelet/config.yaml and kubeadm-flags.env itself. Nothing here names
// minikubelet: the node's kubelet binary is minikubelet or the upstream kubelet.
const kubeletService = `[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
`

const kubeadmDropIn = `# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`

// containerdConfig is the node's /etc/containerd/config.toml: CRI with systemd cgroups
// (kubeadm's default cgroup driver), the CNI plugins where Debian puts them, and every
// registry pointed at a closed port (images are imported; a pull fails at once).
func containerdConfig() string {
	return fmt.Sprintf(`version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
`, PauseImage)
}

// Token is the bootstrap token of `kubeadm init`, given to `kubeadm join`.
const Token = "mkclst.0123456789abcdef"

// kubeletConfig is the KubeletConfiguration document kubeadm merges into the
// config.yaml it writes: the node resolves nothing outside (resolv.conf names the
// machine's bridge address, which refuses), and the upstream kubelet may run on this
// machine's cgroup v1.
func kubeletConfig() string {
	return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
failCgroupV1: false
resolvConf: /etc/resolv.conf
`
}

// initConfig is kubeadm init's configuration for the control-plane node.
func (c *Cluster) initConfig(n *Node) string {
	return fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: %[1]q
  ttl: 24h0m0s
localAPIEndpoint:
  advertiseAddress: %[2]s
  bindPort: 6443
nodeRegistration:
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
  - name: node-ip
    value: %[2]s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: %[3]s
kubernetesVersion: %[4]s
controlPlaneEndpoint: %[2]s:6443
networking:
  podSubnet: %[5]s
  serviceSubnet: %[6]s
  dnsDomain: cluster.local
apiServer:
  certSANs: [%[2]s, 127.0.0.1, localhost]
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
conntrack:
  maxPerCore: 0
---
%[7]s`, Token, n.IP, c.opts.Name, KubernetesVersion, PodSubnet, ServiceSubnet, kubeletConfig())
}

// joinConfig is kubeadm join's configuration for a worker.
func (c *Cluster) joinConfig(n *Node, cp *Node) string {
	return fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: %[1]s:6443
    token: %[2]q
    unsafeSkipCAVerification: true
nodeRegistration:
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
  - name: node-ip
    value: %[3]s
`, cp.IP, Token, n.IP)
}

// kubeadm runs kubeadm in the node with the configuration written to /kind/kubeadm.conf,
// skipping the preflight checks as kind does (they assume a whole machine: swap,
// kernel modules, cgroup v2).
func (n *Node) kubeadm(cfg string, args ...string) (string, error) {
	if err := n.WriteFile("/kind/kubeadm.conf", []byte(cfg), 0o644); err != nil {
		return "", err
	}
	out, err := n.Run("kubeadm", append(args, "--config=/kind/kubeadm.conf", "--skip-phases=preflight", "--v=1")...)
	if err != nil {
		lines := strings.Split(out, "\n")
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		return out, fmt.Errorf("%s: kubeadm %s: %v\n%s", n.Name, args[0], err, strings.Join(lines, "\n"))
	}
	return out, nil
}
