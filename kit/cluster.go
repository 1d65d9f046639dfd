package kit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// Options choose what Start starts.
type Options struct {
	// Name names the cluster's folder (/var/lib/minikubelet-testbed/<Name>), bridge and
	// nodes; clusters of different names can run at once. Default "kit". Start first
	// removes whatever a dead earlier run of the same name left.
	Name string
	// Nodes is the number of minikubelet nodes (default 1), named <Name>-node-<i>. Each
	// has a containerd of its own and its own path to the API server.
	Nodes int
	// NodeConfig is KubeletConfiguration fields (YAML, top level) added to every node's
	// configuration file, e.g. "maxPods: 20\n".
	NodeConfig string
	// NodeFlags are extra minikubelet flags for every node (upstream kubelet names).
	NodeFlags []string
	// Log receives progress lines (nil: quiet), e.g. t.Logf or log.Printf.
	Log func(format string, args ...any)
}

// Images names the images every node has without pulling (imagePullPolicy IfNotPresent).
type Images struct {
	// Busybox is Debian's static busybox with its applets (sh, sleep, ...).
	Busybox string
	// TestApp runs /testapp, minikubelet's test program; "testapp serve" answers HTTP on
	// :8080 with /healthz (FailProbe makes it answer 500), "testapp exit --code=N
	// [--after=D]" exits, "testapp sleep D" sleeps; busybox is in it too.
	TestApp string
}

// Cluster is a running control plane (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, all on loopback) with minikubelet nodes.
type Cluster struct {
	// Client is an admin client (system:masters).
	Client kubernetes.Interface
	// Kubeconfig is the path of an admin kubeconfig, for kubectl or other clients.
	Kubeconfig string
	// Nodes are the cluster's nodes, Ready when Start returns.
	Nodes []*Node
	// Images are the images every node has.
	Images Images

	bed    *testbed.Bed
	mu     sync.Mutex
	traces map[string]*Trace
	seq    int
}

// Node is one minikubelet node.
type Node struct {
	Name string

	kubelet *testbed.Kubelet
	runtime *testbed.NodeRuntime // nil: the bed's own containerd
	proxy   *testbed.APIProxy
}

// Start builds minikubelet and the test images (from this module's source) and starts a
// control plane and opts.Nodes nodes on this machine, waiting until every node is
// Ready. It needs root, the Debian packages and the pinned upstream tools that `make
// deps` in a clone of minikubelet installs and builds (README "A test kit"). Stop the
// cluster with Stop.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Name == "" {
		opts.Name = "kit"
	}
	if opts.Nodes <= 0 {
		opts.Nodes = 1
	}
	bed, err := testbed.Start(testbed.Options{Name: opts.Name, Log: opts.Log})
	if err != nil {
		return nil, err
	}
	c := &Cluster{Client: bed.Client, Kubeconfig: bed.AdminKubeconfig, bed: bed, traces: map[string]*Trace{},
		Images: Images{Busybox: testbed.BusyboxImage, TestApp: testbed.TestAppImage}}
	for i := 0; i < opts.Nodes; i++ {
		n, err := c.startNode(fmt.Sprintf("%s-node-%d", opts.Name, i), i > 0, opts)
		if n != nil {
			c.Nodes = append(c.Nodes, n)
		}
		if err != nil {
			c.Stop()
			return nil, err
		}
	}
	for _, n := range c.Nodes {
		if _, err := bed.WaitNodeReady(ctx, n.kubelet, 2*time.Minute); err != nil {
			err = fmt.Errorf("node %s not Ready: %w\n%s", n.Name, err, n.kubelet.Tail(30))
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// startNode starts node name's API proxy, runtime (a new containerd if ownRuntime, else
// the bed's) and minikubelet.
func (c *Cluster) startNode(name string, ownRuntime bool, opts Options) (*Node, error) {
	n := &Node{Name: name}
	p, err := testbed.StartAPIProxy(c.bed.APIServerHostPort())
	if err != nil {
		return nil, err
	}
	n.proxy = p
	kc, err := c.bed.NodeKubeconfigThrough(name, p)
	if err != nil {
		return n, err
	}
	endpoint := c.bed.CRIEndpoint()
	if ownRuntime {
		if n.runtime, err = c.bed.StartNodeRuntime(name); err != nil {
			return n, fmt.Errorf("node %s runtime: %w", name, err)
		}
		endpoint = n.runtime.Endpoint()
	}
	flags := append([]string{"--kubeconfig=" + kc, "--container-runtime-endpoint=" + endpoint}, opts.NodeFlags...)
	if n.kubelet, err = c.bed.StartMinikubeletWithConfig(name, opts.NodeConfig, flags...); err != nil {
		return n, fmt.Errorf("node %s: %w", name, err)
	}
	return n, nil
}

// Stop stops the nodes and the control plane and removes everything the cluster made:
// pods, processes, mounts, the bridge, firewall rules, files.
func (c *Cluster) Stop() {
	c.mu.Lock()
	for _, t := range c.traces {
		t.Stop()
	}
	c.mu.Unlock()
	for _, n := range c.Nodes {
		if n.kubelet != nil {
			_ = n.kubelet.Stop(15 * time.Second)
		}
		if n.proxy != nil {
			_ = n.proxy.Close()
		}
	}
	c.bed.Stop()
}

// Logs returns the last lines of every component's log (nodes, runtimes, control plane),
// for a failing test to print.
func (c *Cluster) Logs(lines int) string { return c.bed.Logs(lines) }

// Node returns the node named name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// endpoint is the CRI endpoint of the runtime of node name.
func (c *Cluster) endpoint(node string) (string, error) {
	n := c.Node(node)
	if n == nil {
		return "", fmt.Errorf("kit: no node %q in this cluster", node)
	}
	if n.runtime != nil {
		return n.runtime.Endpoint(), nil
	}
	return c.bed.CRIEndpoint(), nil
}

// RunPod creates pod (namespace "default" if unset) and starts its trace first, so the
// trace holds every status from the first. Pods without spec.nodeName are scheduled.
func (c *Cluster) RunPod(ctx context.Context, pod *v1.Pod) (*v1.Pod, error) {
	pod = pod.DeepCopy()
	if pod.Namespace == "" {
		pod.Namespace = metav1.NamespaceDefault
	}
	c.Trace(pod)
	return c.Client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
}

// DeletePod deletes pod at once (grace period 0) and waits until it is gone.
func (c *Cluster) DeletePod(ctx context.Context, pod *v1.Pod) error {
	pods := c.Client.CoreV1().Pods(nsOf(pod))
	err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	for ; err == nil; time.Sleep(100 * time.Millisecond) {
		_, err = pods.Get(ctx, pod.Name, metav1.GetOptions{})
	}
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// Trace returns the trace of pod (by namespace and name), started on first use: a pod
// created elsewhere (by a controller) is traced from its status at that moment.
func (c *Cluster) Trace(pod *v1.Pod) *Trace {
	ns := nsOf(pod)
	c.mu.Lock()
	defer c.mu.Unlock()
	key := ns + "/" + pod.Name
	if t, ok := c.traces[key]; ok {
		return t
	}
	t := newTrace(c.Client, ns, pod.Name)
	c.traces[key] = t
	return t
}

// WaitForTransition waits until pod's trace reaches a status want matches, after the
// status an earlier WaitForTransition of the same pod matched (so successive calls
// assert an order). Its error names what was wanted and holds the whole trace.
func (c *Cluster) WaitForTransition(ctx context.Context, pod *v1.Pod, want Matcher) (*v1.Pod, error) {
	return c.Trace(pod).WaitFor(ctx, want)
}

// livePod reads pod afresh from the API.
func (c *Cluster) livePod(ctx context.Context, pod *v1.Pod) (*v1.Pod, error) {
	if pod == nil {
		return nil, errors.New("kit: nil pod")
	}
	return c.Client.CoreV1().Pods(nsOf(pod)).Get(ctx, pod.Name, metav1.GetOptions{})
}

// nsOf is pod's namespace, "default" if unset.
func nsOf(pod *v1.Pod) string {
	if pod.Namespace == "" {
		return metav1.NamespaceDefault
	}
	return pod.Namespace
}

// WaitForNodeCondition waits until node's condition t (e.g. Ready) has status s, and
// returns the node; its error lists the conditions last seen.
func (c *Cluster) WaitForNodeCondition(ctx context.Context, node string, t v1.NodeConditionType, s v1.ConditionStatus) (*v1.Node, error) {
	var last *v1.Node
	for {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err == nil {
			last = n
			for _, cond := range n.Status.Conditions {
				if cond.Type == t && cond.Status == s {
					return n, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			var seen []string
			if last != nil {
				for _, cond := range last.Status.Conditions {
					seen = append(seen, fmt.Sprintf("%s=%s(%s: %s)", cond.Type, cond.Status, cond.Reason, cond.Message))
				}
			}
			return last, fmt.Errorf("node %s: %s never became %s (%v); last seen: %v", node, t, s, ctx.Err(), seen)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
