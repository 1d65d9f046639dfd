package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeIP is the address the test bed's node reports: loopback, so nothing leaves the machine.
const NodeIP = "127.0.0.1"

// Kubelet is a node agent the bed started.
type Kubelet struct {
	*Proc
	NodeName   string
	Kubeconfig string
	RootDir    string
	Args       []string
	// Port is the node agent's kubelet API port (HTTPS, on NodeIP): each agent gets a free
	// one, so several can run at once.
	Port     int
	upstream bool
	// enter is the PID whose mount, cgroup and PID namespaces the agent runs in (0: the
	// machine's), as a kubelet runs inside a kind node beside its systemd.
	enter int
}

// StartMinikubelet starts minikubelet as node name with the bed's containerd. extra flags
// are appended to the defaults (later flags win).
func (b *Bed) StartMinikubelet(name string, extra ...string) (*Kubelet, error) {
	kc, err := b.NodeKubeconfig(name)
	if err != nil {
		return nil, err
	}
	return b.startMinikubelet(name, kc, "", extra)
}

// StartMinikubeletWithConfig is StartMinikubelet with extraConfig (KubeletConfiguration
// fields, YAML at the top level) appended to the node's config file.
func (b *Bed) StartMinikubeletWithConfig(name, extraConfig string, extra ...string) (*Kubelet, error) {
	kc, err := b.NodeKubeconfig(name)
	if err != nil {
		return nil, err
	}
	return b.startMinikubelet(name, kc, extraConfig, extra)
}

// StartMinikubeletStandalone starts minikubelet with no API server at all: it runs the
// static pods of manifestDir; its kubelet API lets anonymous requests in (the upstream
// kubelet's defaults without a config file, as there is no API server to ask).
func (b *Bed) StartMinikubeletStandalone(name, manifestDir string) (*Kubelet, error) {
	return b.startMinikubelet(name, "", "", []string{"--pod-manifest-path=" + manifestDir,
		"--anonymous-auth=true", "--authentication-token-webhook=false", "--authorization-mode=AlwaysAllow"})
}

// StartMinikubeletInSystemd starts minikubelet as StartMinikubelet does, but inside the
// mount, cgroup and PID namespaces of the bed's systemd (StartSystemdRuntime), so that
// the systemd cgroup driver talks to that systemd as a node's kubelet talks to the node's.
func (b *Bed) StartMinikubeletInSystemd(name string, extra ...string) (*Kubelet, error) {
	if b.Systemd == nil {
		return nil, errors.New("the bed's systemd is not running (StartSystemdRuntime)")
	}
	kc, err := b.NodeKubeconfig(name)
	if err != nil {
		return nil, err
	}
	k, err := b.newMinikubelet(name, kc, "", extra)
	if err != nil {
		return nil, err
	}
	k.enter = b.Systemd.Pid1
	return b.RestartKubelet(k)
}

// startMinikubelet starts minikubelet with the kubeconfig path kc ("" for none), its pod
// cgroups under a cgroup root of its own (NodeCgroupRoot; a --cgroup-root flag wins).
func (b *Bed) startMinikubelet(name, kc, extraConfig string, extra []string) (*Kubelet, error) {
	extraConfig = "cgroupRoot: " + b.NodeCgroupRoot(name) + "\n" + extraConfig
	k, err := b.newMinikubelet(name, kc, extraConfig, extra)
	if err != nil {
		return nil, err
	}
	return b.RestartKubelet(k)
}

// newMinikubelet writes the node's files and returns its (not started) agent.
func (b *Bed) newMinikubelet(name, kc, extraConfig string, extra []string) (*Kubelet, error) {
	root := filepath.Join(b.Dir, "kubelet-"+name)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	// Pods must never get the host's resolver (nothing may leave the machine). An empty
	// resolvConf is not enough: containerd 1.6 then copies the host's /etc/resolv.conf. So
	// the node's resolver file names only the pod's own loopback. Logs stay in the bed.
	resolv := filepath.Join(root, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		return nil, err
	}
	// The kubelet API as the API server reaches it: client certificates from the bed's CA,
	// tokens and authorization through the API server.
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cfgFile := filepath.Join(root, "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
podLogsDir: %s
resolvConf: %s
port: %d
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %s}
authorization: {mode: Webhook}
%s`, filepath.Join(root, "pod-logs"), resolv, port, b.PKI.CAFile(), extraConfig)), 0o644); err != nil {
		return nil, err
	}
	args := []string{"--config=" + cfgFile}
	if kc != "" {
		args = append(args, "--kubeconfig="+kc)
	}
	args = append(append(args,
		"--root-dir="+root,
		"--container-logs-dir="+filepath.Join(root, "container-logs"),
		"--hostname-override="+name,
		"--node-ip="+NodeIP,
		"--container-runtime-endpoint="+b.CRIEndpoint(),
		"--healthz-port=0",
		"--v=2",
	), extra...)
	return &Kubelet{NodeName: name, Kubeconfig: kc, RootDir: root, Args: args, Port: port}, nil
}

// NodeCgroupRoot is the cgroup root the bed gives node agent name: the bed's nodes share
// the machine's cgroup tree, and a node agent removes the pod cgroups under its root that
// are no pod of its own (upstream's orphan sweep). The bed removes the roots when it stops.
func (b *Bed) NodeCgroupRoot(name string) string { return "/" + b.cgroupRootBase() + "/" + name }

func (b *Bed) cgroupRootBase() string { return "mkbed-" + b.opts.Name }

// RestartKubelet starts k again with the same arguments (after Kill or Stop).
func (b *Bed) RestartKubelet(k *Kubelet) (*Kubelet, error) {
	name, bin := "minikubelet-"+k.NodeName, b.MinikubeletBin
	if k.upstream {
		name, bin = "kubelet-"+k.NodeName, filepath.Join(b.ToolsBin, "kubelet")
	}
	args := k.Args
	if k.enter != 0 {
		args, bin = enterSystemd(k.enter, append([]string{bin}, args...)...), "nsenter"
	}
	p, err := b.start(name, bin, args, nil)
	if err != nil {
		return nil, err
	}
	p.group = k.enter != 0
	k.Proc = p
	return k, nil
}

// WaitNodeReady waits until the node's Ready condition is True.
func (b *Bed) WaitNodeReady(ctx context.Context, k *Kubelet, timeout time.Duration) (*v1.Node, error) {
	var node *v1.Node
	err := waitFor(timeout, k.Proc, func() error {
		n, err := b.Client.CoreV1().Nodes().Get(ctx, k.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == v1.NodeReady && c.Status == v1.ConditionTrue {
				node = n
				return nil
			}
		}
		return fmt.Errorf("node %s not Ready yet", k.NodeName)
	})
	return node, err
}
