// Package cluster makes a kind-style Kubernetes cluster on this one machine: every node is
// its own set of namespaces (network, mount, PID, UTS, IPC, cgroup) with systemd as PID 1,
// containerd, and a kubelet installed where kubeadm expects it (minikubelet, or the
// pinned upstream kubelet on UpstreamNodes workers). kubeadm, built from the pinned
// module, makes the cluster: init on the first node (the control plane as static pods),
// join on the others (TLS bootstrap), kube-proxy and CoreDNS as its add-ons. `make
// cluster` and the TestClusters e2e tests use it.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// Options choose the cluster's name, size and network.
type Options struct {
	Name string // "mkc" by default; names the folder, bridge, cgroups and nodes
	Dir  string // default /var/lib/minikubelet-cluster/<Name>
	// Nodes is the number of nodes (one control plane, the rest workers); default 3.
	Nodes int
	// UpstreamNodes workers (the last ones) run the pinned upstream kubelet.
	UpstreamNodes int
	// Subnet is the first three octets of the nodes' /24 (default 172.30.0).
	Subnet string
	Bridge string // default mkc-<Name>
	// KeepOnFailure leaves a cluster that did not come up running, to look into (make
	// cluster-down removes it).
	KeepOnFailure bool
	Log           func(format string, args ...any)
}

// Cluster is a running cluster.
type Cluster struct {
	opts  Options
	Dir   string
	Nodes []*Node
	// Kubeconfig is kubeadm's admin.conf, for the machine (the API server at the
	// control-plane node's address).
	Kubeconfig string
	Client     kubernetes.Interface
	// Kubectl is the pinned kubectl (the machine may have none).
	Kubectl string
}

func withDefaults(o Options) Options {
	if o.Name == "" {
		o.Name = "mkc"
	}
	if o.Dir == "" {
		o.Dir = filepath.Join("/var/lib/minikubelet-cluster", o.Name)
	}
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Subnet == "" {
		o.Subnet = "172.30.0"
	}
	if o.Bridge == "" {
		o.Bridge = "mkc-" + o.Name
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	return o
}

func newCluster(o Options) *Cluster {
	c := &Cluster{opts: o, Dir: o.Dir}
	for i := 0; i < o.Nodes; i++ {
		name := o.Name + "-control-plane"
		if i > 0 {
			name = o.Name + "-worker"
			if i > 1 {
				name += fmt.Sprint(i)
			}
		}
		c.Nodes = append(c.Nodes, &Node{
			Name: name, IP: fmt.Sprintf("%s.%d", o.Subnet, i+2),
			ControlPlane: i == 0, Upstream: i > 0 && i >= o.Nodes-o.UpstreamNodes,
			dir: filepath.Join(o.Dir, "nodes", name), cgroup: "mkcl-" + o.Name + "-" + name,
		})
	}
	return c
}

// Up makes the cluster and waits until every node is Ready and kube-proxy and CoreDNS
// run. A cluster of the same name left by an earlier run is removed first.
func Up(ctx context.Context, opts Options) (*Cluster, error) {
	opts = withDefaults(opts)
	if opts.Nodes < 1 || opts.UpstreamNodes < 0 || opts.UpstreamNodes > opts.Nodes-1 {
		return nil, fmt.Errorf("cluster: %d nodes with %d upstream workers: need at least one node, and upstream kubelets only on workers", opts.Nodes, opts.UpstreamNodes)
	}
	Down(opts)
	c := newCluster(opts)
	ok := false
	defer func() {
		if !ok && !opts.KeepOnFailure {
			c.Stop()
		}
	}()
	var toolsBin, agent, workerImages, cpImages string
	steps := []struct {
		name string
		fn   func() error
	}{
		{"upstream tools (cached after the first build)", func() (err error) {
			toolsBin, err = testbed.BuildTools()
			c.Kubectl = filepath.Join(toolsBin, "kubectl")
			return
		}},
		{"minikubelet", func() error {
			agent = filepath.Join(c.Dir, "bin", "minikubelet")
			return testbed.BuildMinikubelet(agent, "v0.1.0-cluster")
		}},
		{"images", func() (err error) { workerImages, cpImages, err = c.archives(toolsBin); return }},
		{"bridge", c.setUpBridge},
		{"nodes", func() error { return c.bootNodes(toolsBin, agent, workerImages, cpImages) }},
		{"kubeadm init", c.initControlPlane},
		{"kubeadm join", c.joinWorkers},
		{"pod network", c.setUpPodNetwork},
		{"add-ons (metrics-server)", c.applyAddOns},
		{"nodes Ready, kube-proxy, CoreDNS and metrics-server running", func() error { return c.waitHealthy(ctx, 5*time.Minute) }},
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.fn(); err != nil {
			return nil, fmt.Errorf("cluster %s: %w", s.name, err)
		}
		opts.Log("cluster: %s (%.1fs)", s.name, time.Since(start).Seconds())
	}
	ok = true
	return c, nil
}

// archives writes the image archives: everything for the control plane; the node images
// (pause, kube-proxy, CoreDNS, test images) for workers.
func (c *Cluster) archives(toolsBin string) (worker, controlPlane string, err error) {
	all, cp, err := buildImages(toolsBin, filepath.Join(c.Dir, "images"))
	if err != nil {
		return "", "", err
	}
	worker, controlPlane = filepath.Join(c.Dir, "images", "worker.tar"), filepath.Join(c.Dir, "images", "control-plane.tar")
	if err := testbed.WriteArchive(worker, all); err != nil {
		return "", "", err
	}
	return worker, controlPlane, testbed.WriteArchive(controlPlane, cp)
}

// bootNodes installs containerd's and the kubelet's files into each node, boots it,
// plugs it into the bridge and imports its images; nodes boot one after another, their
// imports run alongside.
func (c *Cluster) bootNodes(toolsBin, agent, workerImages, cpImages string) error {
	kubeadm, err := os.ReadFile(filepath.Join(toolsBin, "kubeadm"))
	if err != nil {
		return err
	}
	hosts := "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
	for _, n := range c.Nodes {
		hosts += n.IP + " " + n.Name + "\n"
	}
	var wg sync.WaitGroup
	errs := make([]error, len(c.Nodes))
	for i, n := range c.Nodes {
		kubelet := agent
		if n.Upstream {
			kubelet = filepath.Join(toolsBin, "kubelet")
		}
		kb, err := os.ReadFile(kubelet)
		if err != nil {
			return err
		}
		files := map[string][]byte{
			"usr/bin/kubelet":                                      kb,
			"usr/bin/kubeadm":                                      kubeadm,
			"etc/systemd/system/kubelet.service":                   []byte(kubeletService),
			"etc/systemd/system/kubelet.service.d/10-kubeadm.conf": []byte(kubeadmDropIn),
			"etc/systemd/system/multi-user.target.wants/.keep":     nil,
			"etc/containerd/config.toml":                           []byte(containerdConfig()),
			"etc/hosts":                                            []byte(hosts),
			"etc/resolv.conf":                                      []byte("nameserver " + c.hostIP() + "\n"),
			"etc/machine-id":                                       []byte(fmt.Sprintf("%032x\n", time.Now().UnixNano()+int64(i))),
			"etc/default/kubelet":                                  []byte("KUBELET_EXTRA_ARGS=\n"),
		}
		for _, r := range testbed.PublicRegistries { // each at a closed local port
			files["etc/containerd/certs.d/"+r+"/hosts.toml"] = []byte(testbed.RegistryHostTOML("http://127.0.0.1:1"))
		}
		for p, data := range files {
			mode := os.FileMode(0o644)
			if strings.HasPrefix(p, "usr/bin/") {
				mode = 0o755
			}
			if err := n.seed(p, data, mode); err != nil {
				return err
			}
		}
		if err := n.boot(); err != nil {
			return err
		}
		if err := c.plugNode(n, i); err != nil {
			return err
		}
		archive := workerImages
		if n.ControlPlane {
			archive = cpImages
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			socket := n.Path("/run/containerd/containerd.sock")
			if errs[i] = n.waitFor(30*time.Second, func() error { _, err := os.Stat(socket); return err }); errs[i] != nil {
				return
			}
			errs[i] = testbed.ImportArchive(socket, archive)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// initControlPlane runs kubeadm init on the first node and keeps its admin.conf.
func (c *Cluster) initControlPlane() error {
	cp := c.Nodes[0]
	if _, err := cp.kubeadm(c.initConfig(cp), "init", "--skip-token-print"); err != nil {
		return err
	}
	admin, err := os.ReadFile(cp.Path("/etc/kubernetes/admin.conf"))
	if err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, admin, 0o600); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return err
	}
	c.Client, err = kubernetes.NewForConfig(cfg)
	return err
}

// joinWorkers runs kubeadm join on every other node, one after another (each waits for
// its kubelet's TLS bootstrap).
func (c *Cluster) joinWorkers() error {
	for _, n := range c.Nodes[1:] {
		if _, err := n.kubeadm(c.joinConfig(n, c.Nodes[0]), "join"); err != nil {
			return err
		}
	}
	return nil
}

// setUpPodNetwork waits for the controller-manager to give every node its pod CIDR, then
// writes the CNI networks and routes.
func (c *Cluster) setUpPodNetwork() error {
	cidrs := map[string]string{}
	err := c.Nodes[0].waitFor(2*time.Minute, func() error {
		nodes, err := c.Client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, n := range nodes.Items {
			if n.Spec.PodCIDR != "" {
				cidrs[n.Name] = n.Spec.PodCIDR
			}
		}
		for _, n := range c.Nodes {
			if cidrs[n.Name] == "" {
				return fmt.Errorf("node %s has no pod CIDR yet", n.Name)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.routePods(cidrs)
}

// waitHealthy waits for every node Ready and every kube-system pod (the static pods,
// kube-proxy on each node, CoreDNS) Running and ready.
func (c *Cluster) waitHealthy(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = c.healthy(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return last
		case <-time.After(time.Second):
		}
	}
}

func (c *Cluster) healthy(ctx context.Context) error {
	nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	ready := 0
	for _, n := range nodes.Items {
		for _, cond := range n.Status.Conditions {
			if cond.Type == v1.NodeReady && cond.Status == v1.ConditionTrue {
				ready++
			}
		}
	}
	if ready != len(c.Nodes) {
		return fmt.Errorf("%d of %d nodes Ready", ready, len(c.Nodes))
	}
	pods, err := c.Client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	var waiting []string
	proxies, dns, metrics := 0, 0, 0
	for _, p := range pods.Items {
		if strings.HasPrefix(p.Name, "kube-proxy-") {
			proxies++
		}
		if strings.HasPrefix(p.Name, "coredns-") {
			dns++
		}
		if strings.HasPrefix(p.Name, "metrics-server-") {
			metrics++
		}
		if !podReady(&p) {
			waiting = append(waiting, p.Name+" ("+string(p.Status.Phase)+")")
		}
	}
	if len(waiting) > 0 || proxies != len(c.Nodes) || dns == 0 || metrics == 0 {
		return fmt.Errorf("kube-system: %d kube-proxy, %d coredns, %d metrics-server; not ready: %s", proxies, dns, metrics, strings.Join(waiting, ", "))
	}
	return nil
}

func podReady(p *v1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// Stop ends every node and removes what the cluster made: namespaces (and with them
// every process, mount, route and iptables rule inside), cgroups, the bridge, the
// machine's guard rules and the folder.
func (c *Cluster) Stop() {
	for _, n := range c.Nodes {
		killNode(n.dir, n.cgroup)
	}
	c.tearDownBridge()
	_ = os.RemoveAll(c.Dir)
}

// Down removes a cluster left by `make cluster`, from its options alone.
func Down(opts Options) {
	opts = withDefaults(opts)
	c := newCluster(opts)
	entries, _ := os.ReadDir(filepath.Join(opts.Dir, "nodes"))
	for _, e := range entries { // nodes of a bigger earlier cluster too
		killNode(filepath.Join(opts.Dir, "nodes", e.Name()), "mkcl-"+opts.Name+"-"+e.Name())
	}
	c.Stop()
}

// Name, Bridge and Subnet are the cluster's (its cgroups are mkcl-<Name>-<node>).
func (c *Cluster) Name() string   { return c.opts.Name }
func (c *Cluster) Bridge() string { return c.opts.Bridge }
func (c *Cluster) Subnet() string { return c.opts.Subnet }

// Logs is the tail of every node's kubelet and containerd journal, for a failing test.
func (c *Cluster) Logs(lines int) string {
	var sb strings.Builder
	for _, n := range c.Nodes {
		if n.Pid() == 0 {
			continue
		}
		for _, unit := range []string{"kubelet", "containerd"} {
			out, err := n.Command("journalctl", "--no-pager", "-o", "cat", "-n", fmt.Sprint(lines), "-u", unit).CombinedOutput()
			fmt.Fprintf(&sb, "----- %s %s (last %d lines; %v)\n%s\n", n.Name, unit, lines, err, out)
		}
	}
	return sb.String()
}

// NodeByName returns the cluster's node of that name.
func (c *Cluster) NodeByName(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}
