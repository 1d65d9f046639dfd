package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/minikubelet/minikubelet/test/cluster"
	"github.com/minikubelet/minikubelet/test/testbed"
)

// TestClusters runs the suites that bring up clusters of their own beside the e2e bed,
// side by side: each mostly waits (kubeadm, the node lifecycle controller's grace
// periods, a 40 s load through a rollout), and one after another they took 11 of CI's
// minutes on 2 cores. Their names, bridges, subnets and cgroups are their own.
func TestClusters(t *testing.T) {
	var suites sync.WaitGroup
	for _, s := range []struct {
		name string
		run  func(*testing.T)
	}{
		// A kubeadm-made 3-node cluster of minikubelet nodes (package test/cluster, what
		// `make cluster` makes) runs what a cluster user runs; then its teardown leaves
		// nothing behind.
		{"Cluster", func(t *testing.T) { runClusterSuite(t, cluster.Options{Name: "e2e", Subnet: "172.30.1"}) }},
		// The same with the last worker on the pinned upstream kubelet, but for NodeLost:
		// losing a minikubelet node is the node lifecycle controller's business and the
		// first suite's step; here it would only add a minute.
		{"ClusterMixed", func(t *testing.T) {
			runClusterSuite(t, cluster.Options{Name: "e2emix", Subnet: "172.30.2", UpstreamNodes: 1})
		}},
		{"Kit", runKitSuite},
	} {
		// All at once, whatever -parallel says (it defaults to the 2 cores): the suites
		// wait far more than they compute.
		suites.Go(func() { t.Run(s.name, s.run) })
	}
	suites.Wait()
}

func runClusterSuite(t *testing.T, opts cluster.Options) {
	opts.Log = t.Logf
	ctx := ctxFor(t, 20*time.Minute)
	start := time.Now()
	c, err := cluster.Up(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster of %d nodes Ready in %.0fs", len(c.Nodes), time.Since(start).Seconds())
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			if t.Failed() {
				t.Logf("node logs:\n%s", c.Logs(40))
			}
			c.Stop()
		}
	})
	ct := &clusterTest{c: c, cs: c.Client}
	for _, st := range []struct {
		name string
		fn   func(context.Context, *testing.T)
	}{
		{"Nodes", ct.nodes},
		{"Top", ct.top},
		{"Service", ct.service},
		{"Scheduling", ct.scheduling},
		{"Cgroups", ct.cgroups},
		{"Workloads", ct.workloads},
		{"Drain", ct.drain},
		{"NodeLost", ct.nodeLost},
		{"Bandwidth", ct.bandwidth},
		{"Reset", ct.reset},
	} {
		if st.name == "NodeLost" && opts.UpstreamNodes > 0 {
			continue
		}
		if !t.Run(st.name, func(t *testing.T) { st.fn(ctx, t) }) {
			t.Logf("node logs:\n%s", c.Logs(40))
		}
	}
	t.Run("Teardown", func(t *testing.T) {
		stopped = true
		ct.teardown(t)
	})
}

type clusterTest struct {
	c  *cluster.Cluster
	cs kubernetes.Interface
}

func (ct *clusterTest) workers() []*cluster.Node { return ct.c.Nodes[1:] }

// kubectl runs the pinned kubectl against the cluster.
func (ct *clusterTest) kubectl(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, filepath.Join(bed.ToolsBin, "kubectl"), append([]string{"--kubeconfig=" + ct.c.Kubeconfig}, args...)...).CombinedOutput()
	return string(out), err
}

// poll checks cond until it holds (cond's last error is the failure).
func poll(ctx context.Context, t *testing.T, timeout time.Duration, what string, cond func(context.Context) error) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		last = cond(ctx)
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("%s: %v (last: %v)", what, err, last)
	}
}

// nodes: every node Ready with kubeadm's labels, the control plane tainted, each node's
// agent the one asked for, and kubeadm's control plane and add-ons Running on them.
func (ct *clusterTest) nodes(ctx context.Context, t *testing.T) {
	for _, n := range ct.c.Nodes {
		node, err := ct.cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, cpLabel := node.Labels["node-role.kubernetes.io/control-plane"]
		tainted := false
		for _, taint := range node.Spec.Taints {
			tainted = tainted || (taint.Key == "node-role.kubernetes.io/control-plane" && taint.Effect == v1.TaintEffectNoSchedule)
		}
		if cpLabel != n.ControlPlane || tainted != n.ControlPlane {
			t.Errorf("%s: control-plane label %v, taint %v; want %v", n.Name, cpLabel, tainted, n.ControlPlane)
		}
		if _, excluded := node.Labels["node.kubernetes.io/exclude-from-external-load-balancers"]; node.Labels["kubernetes.io/hostname"] != n.Name ||
			node.Labels["kubernetes.io/os"] != "linux" || excluded != n.ControlPlane {
			t.Errorf("%s: labels %v", n.Name, node.Labels)
		}
		if got, want := strings.HasPrefix(node.Status.NodeInfo.KubeletVersion, "minikubelet/"), !n.Upstream; got != want {
			t.Errorf("%s: kubelet version %q, minikubelet wanted: %v", n.Name, node.Status.NodeInfo.KubeletVersion, want)
		}
		rss, err := n.Run("sh", "-c", "grep VmRSS /proc/$(systemctl show -p MainPID --value kubelet)/status")
		t.Logf("%s: %s, kubelet %s", n.Name, node.Status.NodeInfo.KubeletVersion, strings.Join(strings.Fields(rss), " "))
		if err != nil {
			t.Error(err)
		}
		if node.Spec.PodCIDR == "" || !nodeAddress(node, n.IP) {
			t.Errorf("%s: podCIDR %q, addresses %v", n.Name, node.Spec.PodCIDR, node.Status.Addresses)
		}
	}
	pods, err := ct.cs.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, p := range pods.Items {
		name := p.Name
		if i := strings.LastIndex(name, "-"); i > 0 && (strings.HasPrefix(name, "kube-proxy-") || strings.HasPrefix(name, "coredns-")) {
			name = strings.TrimSuffix(name[:i], "-"+p.Labels["pod-template-hash"])
		} else {
			name = strings.TrimSuffix(name, "-"+p.Spec.NodeName)
		}
		seen[name]++
		if p.Status.Phase != v1.PodRunning || !podReady(&p) {
			t.Errorf("%s on %s: %s", p.Name, p.Spec.NodeName, describe(&p))
		}
	}
	for name, want := range map[string]int{"etcd": 1, "kube-apiserver": 1, "kube-controller-manager": 1, "kube-scheduler": 1, "kube-proxy": len(ct.c.Nodes), "coredns": 2} {
		if seen[name] != want {
			t.Errorf("kube-system: %d %s pods, want %d (all: %v)", seen[name], name, want, seen)
		}
	}
}

func nodeAddress(n *v1.Node, ip string) bool {
	for _, a := range n.Status.Addresses {
		if a.Type == v1.NodeInternalIP && a.Address == ip {
			return true
		}
	}
	return false
}

// tryPod runs a one-shot test-app pod on node and returns its output, or an error if it
// does not succeed.
func (ct *clusterTest) tryPod(ctx context.Context, node string, timeout time.Duration, args ...string) (string, error) {
	return ct.tryPodAnnotated(ctx, node, nil, timeout, args...)
}

func (ct *clusterTest) tryPodAnnotated(ctx context.Context, node string, annotations map[string]string, timeout time.Duration, args ...string) (string, error) {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "client-", Namespace: "default", Annotations: annotations},
		Spec: v1.PodSpec{NodeName: node, RestartPolicy: v1.RestartPolicyNever, TerminationGracePeriodSeconds: ptr(int64(1)),
			Containers: []v1.Container{{Name: "client", Image: testbed.TestAppImage, Args: args}}},
	}
	p, err := ct.cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	defer func() {
		_ = ct.cs.CoreV1().Pods("default").Delete(context.Background(), p.Name, metav1.DeleteOptions{})
	}()
	err = wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err = ct.cs.CoreV1().Pods("default").Get(ctx, p.Name, metav1.GetOptions{})
		return err == nil && (p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed), nil
	})
	logs, lerr := ct.cs.CoreV1().Pods("default").GetLogs(p.Name, &v1.PodLogOptions{}).DoRaw(ctx)
	if err != nil || lerr != nil || p.Status.Phase != v1.PodSucceeded {
		return string(logs), fmt.Errorf("pod %v on %s: %s; err %v / %v; output:\n%s", args, node, describe(p), err, lerr, logs)
	}
	return string(logs), nil
}

// webDeployment is the test app behind a readiness probe, spread over nodes.
func webDeployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxUnavailable: ptr(intstr.FromInt32(0)), MaxSurge: ptr(intstr.FromInt32(1))}},
			Template: v1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: v1.PodSpec{
					TerminationGracePeriodSeconds: ptr(int64(5)),
					TopologySpreadConstraints: []v1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "kubernetes.io/hostname",
						WhenUnsatisfiable: v1.ScheduleAnyway, LabelSelector: &metav1.LabelSelector{MatchLabels: labels}}},
					Containers: []v1.Container{{
						Name: "web", Image: testbed.TestAppImage, Args: []string{"serve", "--http=:8080"},
						Ports: []v1.ContainerPort{{ContainerPort: 8080}},
						ReadinessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 1},
						// The old pod keeps serving until its endpoint is gone everywhere.
						Lifecycle: &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 2}}},
					}},
				},
			},
		},
	}
}

func (ct *clusterTest) waitDeployment(ctx context.Context, t *testing.T, name string, replicas int32) []v1.Pod {
	t.Helper()
	var pods []v1.Pod
	poll(ctx, t, 3*time.Minute, "deployment "+name+" rolled out", func(ctx context.Context) error {
		d, err := ct.cs.AppsV1().Deployments("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s := d.Status
		if s.ObservedGeneration < d.Generation || s.UpdatedReplicas != replicas || s.ReadyReplicas != replicas || s.Replicas != replicas {
			return fmt.Errorf("status %+v", s)
		}
		list, err := ct.cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return err
		}
		pods = pods[:0]
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil {
				pods = append(pods, p)
			}
		}
		if len(pods) != int(replicas) {
			return fmt.Errorf("%d pods", len(pods))
		}
		return nil
	})
	return pods
}

// service: a Deployment behind a ClusterIP and a NodePort Service, reached by name and
// ClusterIP from a pod on another node and by NodePort from a node; scaled 1 -> 3
// (spread) -> 1; a rolling update keeps it answering throughout.
func (ct *clusterTest) service(ctx context.Context, t *testing.T) {
	const name = "web"
	if _, err := ct.cs.AppsV1().Deployments("default").Create(ctx, webDeployment(name, 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := ct.cs.CoreV1().Services("default").Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.ServiceSpec{Selector: map[string]string{"app": name},
			Ports: []v1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	np, err := ct.cs.CoreV1().Services("default").Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-np"},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeNodePort, Selector: map[string]string{"app": name},
			Ports: []v1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods := ct.waitDeployment(ctx, t, name, 1)
	backend := pods[0].Spec.NodeName
	client := ct.workers()[0].Name
	if client == backend {
		client = ct.workers()[len(ct.workers())-1].Name
	}
	urls := []string{"http://web/hostname", "http://web.default/hostname", "http://web.default.svc.cluster.local/hostname",
		"http://" + svc.Spec.ClusterIP + "/hostname"}
	// The first lookups may race kube-proxy's first sync of the new Service on the client's
	// node; a pod that fails is run again until the deadline.
	var out string
	poll(ctx, t, time.Minute, "web by name and ClusterIP from "+client, func(ctx context.Context) error {
		out, err = ct.tryPod(ctx, client, 30*time.Second, append([]string{"get"}, urls...)...)
		return err
	})
	if strings.Count(out, pods[0].Name) != len(urls) {
		t.Errorf("answers from %s, want %s on each:\n%s", client, pods[0].Name, out)
	}
	// NodePort, from every node to every node (kube-proxy's rules on each).
	port := strconv.Itoa(int(np.Spec.Ports[0].NodePort))
	for _, from := range ct.c.Nodes {
		for _, to := range ct.c.Nodes {
			poll(ctx, t, 30*time.Second, "NodePort from "+from.Name+" to "+to.Name, func(context.Context) error {
				out, err := from.Run("curl", "-sS", "--max-time", "3", "http://"+to.IP+":"+port+"/hostname")
				if err == nil && !strings.Contains(out, pods[0].Name) {
					err = fmt.Errorf("answer %q", out)
				}
				return err
			})
		}
	}

	// Scale to 3: spread over the workers (the control plane is tainted), every one answers.
	ct.scale(ctx, t, name, 3)
	pods = ct.waitDeployment(ctx, t, name, 3)
	nodes := map[string]bool{}
	for _, p := range pods {
		nodes[p.Spec.NodeName] = true
	}
	if len(nodes) != len(ct.workers()) {
		t.Errorf("3 replicas on %v, want every worker", nodes)
	}
	answered := map[string]bool{}
	poll(ctx, t, time.Minute, "every replica answers through the Service", func(ctx context.Context) error {
		out, err := ct.tryPod(ctx, client, 30*time.Second, "get", "http://web/hostname", "http://web/hostname", "http://web/hostname", "http://web/hostname", "http://web/hostname", "http://web/hostname")
		for _, p := range pods {
			if strings.Contains(out, p.Name) {
				answered[p.Name] = true
			}
		}
		if err == nil && len(answered) < len(pods) {
			err = fmt.Errorf("answered so far: %v", answered)
		}
		return err
	})
	ct.scale(ctx, t, name, 1)
	ct.waitDeployment(ctx, t, name, 1)

	// Rolling update under load: a client asks every 100 ms through the rollout.
	watcher := make(chan string, 1)
	go func() {
		out, err := ct.tryPod(ctx, client, 2*time.Minute, "get", "--every=100ms", "--for=40s", "--timeout=1s", "http://web/hostname")
		if err != nil {
			out = err.Error()
		}
		watcher <- out
	}()
	time.Sleep(5 * time.Second) // let the watcher start asking before the rollout begins
	// The deployment controller writes the object's status meanwhile: read and update
	// again on a conflict.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err := ct.cs.AppsV1().Deployments("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = cluster.TestAppV2
		_, err = ct.cs.AppsV1().Deployments("default").Update(ctx, d, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	pods = ct.waitDeployment(ctx, t, name, 1)
	if pods[0].Spec.Containers[0].Image != cluster.TestAppV2 {
		t.Errorf("after the rollout: %s", pods[0].Spec.Containers[0].Image)
	}
	if out := <-watcher; !strings.Contains(out, "failed=0") {
		t.Errorf("the Service did not answer throughout the rolling update:\n%s", out)
	}
	if err := ct.cs.AppsV1().Deployments("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (ct *clusterTest) scale(ctx context.Context, t *testing.T, name string, n int32) {
	t.Helper()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := ct.cs.AppsV1().Deployments("default").GetScale(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Replicas = n
		_, err = ct.cs.AppsV1().Deployments("default").UpdateScale(ctx, name, s, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// sleeper is a long-running pod for placement tests.
func sleeper(name string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"placement": "test"}},
		Spec: v1.PodSpec{TerminationGracePeriodSeconds: ptr(int64(1)),
			Containers: []v1.Container{{Name: "sleep", Image: testbed.TestAppImage, Args: []string{"sleep", "1h"}}}},
	}
}

// scheduling: nodeName, nodeSelector, required and preferred node affinity, and a
// NoSchedule taint with and without toleration place pods as the scheduler decides, and
// the chosen node's agent runs them; a DaemonSet lands on every node, the control plane
// too with its toleration.
func (ct *clusterTest) scheduling(ctx context.Context, t *testing.T) {
	w1, w2 := ct.workers()[0].Name, ct.workers()[len(ct.workers())-1].Name
	if _, err := ct.cs.CoreV1().Nodes().Patch(ctx, w2, "application/merge-patch+json",
		[]byte(`{"metadata":{"labels":{"e2e-zone":"b"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	in := func(values ...string) *v1.NodeSelector {
		return &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{
			{Key: "kubernetes.io/hostname", Operator: v1.NodeSelectorOpIn, Values: values}}}}}
	}
	byName := sleeper("by-name")
	byName.Spec.NodeName = w1
	bySelector := sleeper("by-selector")
	bySelector.Spec.NodeSelector = map[string]string{"e2e-zone": "b"}
	required := sleeper("required-affinity")
	required.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: in(w1)}}
	preferred := sleeper("preferred-affinity")
	preferred.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []v1.PreferredSchedulingTerm{
		{Weight: 100, Preference: v1.NodeSelectorTerm{MatchExpressions: in(w2).NodeSelectorTerms[0].MatchExpressions}}}}}
	tolerating := sleeper("tolerates-control-plane")
	tolerating.Spec.NodeSelector = map[string]string{"node-role.kubernetes.io/control-plane": ""}
	tolerating.Spec.Tolerations = []v1.Toleration{{Key: "node-role.kubernetes.io/control-plane", Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule}}
	intolerant := sleeper("intolerant")
	intolerant.Spec.NodeSelector = map[string]string{"node-role.kubernetes.io/control-plane": ""}
	want := map[string]string{byName.Name: w1, bySelector.Name: w2, required.Name: w1, preferred.Name: w2, tolerating.Name: ct.c.Nodes[0].Name}
	for _, p := range []*v1.Pod{byName, bySelector, required, preferred, tolerating, intolerant} {
		if _, err := ct.cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		_ = ct.cs.CoreV1().Pods("default").DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "placement=test"})
	}()
	for name, node := range want {
		poll(ctx, t, 2*time.Minute, name+" Running on "+node, func(ctx context.Context) error {
			p, err := ct.cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if p.Spec.NodeName != node || p.Status.Phase != v1.PodRunning {
				return fmt.Errorf("on %q: %s", p.Spec.NodeName, describe(p))
			}
			return nil
		})
	}
	p, err := ct.cs.CoreV1().Pods("default").Get(ctx, intolerant.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c := podCondition(p, v1.PodScheduled); p.Spec.NodeName != "" || c == nil || c.Reason != v1.PodReasonUnschedulable {
		t.Errorf("a pod without the toleration is placed on the tainted control plane: %s on %q", describe(p), p.Spec.NodeName)
	}

	// A DaemonSet with the control-plane toleration: one pod on every node.
	labels := map[string]string{"app": "every-node"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "every-node", Namespace: "default"},
		Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: v1.PodSpec{
				TerminationGracePeriodSeconds: ptr(int64(1)),
				Tolerations:                   []v1.Toleration{{Key: "node-role.kubernetes.io/control-plane", Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule}},
				Containers:                    []v1.Container{{Name: "sleep", Image: testbed.TestAppImage, Args: []string{"sleep", "1h"}}}}}},
	}
	if _, err := ct.cs.AppsV1().DaemonSets("default").Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = ct.cs.AppsV1().DaemonSets("default").Delete(context.Background(), ds.Name, metav1.DeleteOptions{})
	}()
	poll(ctx, t, 2*time.Minute, "DaemonSet on every node", func(ctx context.Context) error {
		list, err := ct.cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=every-node"})
		if err != nil {
			return err
		}
		running := map[string]bool{}
		for _, p := range list.Items {
			if p.Status.Phase == v1.PodRunning && podReady(&p) {
				running[p.Spec.NodeName] = true
			}
		}
		if len(running) != len(ct.c.Nodes) {
			return fmt.Errorf("ready on %v", running)
		}
		return nil
	})
}

// workloads: a ReplicationController scales, a Job and a CronJob complete.
func (ct *clusterTest) workloads(ctx context.Context, t *testing.T) {
	labels := map[string]string{"app": "rc"}
	rc := &v1.ReplicationController{
		ObjectMeta: metav1.ObjectMeta{Name: "rc", Namespace: "default"},
		Spec: v1.ReplicationControllerSpec{Replicas: ptr(int32(1)), Selector: labels,
			Template: &v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: v1.PodSpec{TerminationGracePeriodSeconds: ptr(int64(1)),
				Containers: []v1.Container{{Name: "sleep", Image: testbed.TestAppImage, Args: []string{"sleep", "1h"}}}}}},
	}
	if _, err := ct.cs.CoreV1().ReplicationControllers("default").Create(ctx, rc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() { // a ReplicationController orphans its pods unless told otherwise
		bg := metav1.DeletePropagationBackground
		_ = ct.cs.CoreV1().ReplicationControllers("default").Delete(context.Background(), rc.Name, metav1.DeleteOptions{PropagationPolicy: &bg})
	}()
	for _, n := range []int32{1, 3} {
		if n != 1 {
			s, err := ct.cs.CoreV1().ReplicationControllers("default").GetScale(ctx, rc.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			s.Spec.Replicas = n
			if _, err := ct.cs.CoreV1().ReplicationControllers("default").UpdateScale(ctx, rc.Name, s, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		poll(ctx, t, 2*time.Minute, fmt.Sprintf("ReplicationController at %d ready", n), func(ctx context.Context) error {
			r, err := ct.cs.CoreV1().ReplicationControllers("default").Get(ctx, rc.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if r.Status.ReadyReplicas != n || r.Status.Replicas != n {
				return fmt.Errorf("status %+v", r.Status)
			}
			return nil
		})
	}

	job := func(name string) batchv1.JobSpec {
		return batchv1.JobSpec{Completions: ptr(int32(2)), Parallelism: ptr(int32(2)), BackoffLimit: ptr(int32(0)),
			Template: v1.PodTemplateSpec{Spec: v1.PodSpec{RestartPolicy: v1.RestartPolicyNever,
				Containers: []v1.Container{{Name: name, Image: testbed.TestAppImage, Args: []string{"exit", "--after=1s", "--log=done"}}}}}}
	}
	if _, err := ct.cs.BatchV1().Jobs("default").Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "job"}, Spec: job("job")}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ct.cs.BatchV1().CronJobs("default").Create(ctx, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "cron"},
		Spec: batchv1.CronJobSpec{Schedule: "* * * * *", ConcurrencyPolicy: batchv1.ForbidConcurrent,
			JobTemplate: batchv1.JobTemplateSpec{Spec: job("cron")}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bg := metav1.DeletePropagationBackground
	defer func() {
		_ = ct.cs.BatchV1().Jobs("default").Delete(context.Background(), "job", metav1.DeleteOptions{PropagationPolicy: &bg})
		_ = ct.cs.BatchV1().CronJobs("default").Delete(context.Background(), "cron", metav1.DeleteOptions{PropagationPolicy: &bg})
	}()
	poll(ctx, t, 2*time.Minute, "Job complete", func(ctx context.Context) error {
		j, err := ct.cs.BatchV1().Jobs("default").Get(ctx, "job", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if j.Status.Succeeded != 2 || j.Status.CompletionTime == nil {
			return fmt.Errorf("status %+v", j.Status)
		}
		return nil
	})
	// The CronJob's first run starts within a minute of its creation.
	poll(ctx, t, 150*time.Second, "a CronJob run complete", func(ctx context.Context) error {
		c, err := ct.cs.BatchV1().CronJobs("default").Get(ctx, "cron", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if c.Status.LastSuccessfulTime == nil {
			return fmt.Errorf("status %+v", c.Status)
		}
		return nil
	})
}

// drain: cordon a worker and evict its pods through the eviction API (graceful
// termination, preStop run); their replacements come up on the other worker; uncordon
// makes it schedulable again.
func (ct *clusterTest) drain(ctx context.Context, t *testing.T) {
	ws := ct.workers()
	victim, other := ws[0].Name, ws[len(ws)-1].Name
	dep := webDeployment("drained", 2)
	dep.Spec.Template.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
		NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{
			{Key: "kubernetes.io/hostname", Operator: v1.NodeSelectorOpIn, Values: []string{victim, other}}}}}}}}
	// The preStop hook writes where the test can read it afterwards: the victim node's disk.
	dep.Spec.Template.Spec.Volumes = []v1.Volume{{Name: "mark", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/var/lib/e2e-prestop", Type: ptr(v1.HostPathDirectoryOrCreate)}}}}
	c := &dep.Spec.Template.Spec.Containers[0]
	c.VolumeMounts = []v1.VolumeMount{{Name: "mark", MountPath: "/mark"}}
	c.Env = []v1.EnvVar{{Name: "POD", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
	dep.Spec.Template.Spec.Containers = append(dep.Spec.Template.Spec.Containers, v1.Container{
		Name: "hook", Image: testbed.BusyboxImage, Command: []string{"sleep", "3600"},
		VolumeMounts: []v1.VolumeMount{{Name: "mark", MountPath: "/mark"}},
		Env:          c.Env,
		Lifecycle:    &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"sh", "-c", "touch /mark/$POD"}}}},
	})
	if _, err := ct.cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = ct.cs.AppsV1().Deployments("default").Delete(context.Background(), dep.Name, metav1.DeleteOptions{})
	}()
	pods := ct.waitDeployment(ctx, t, dep.Name, 2)
	var onVictim []string
	for _, p := range pods {
		if p.Spec.NodeName == victim {
			onVictim = append(onVictim, p.Name)
		}
	}
	if len(onVictim) == 0 {
		t.Fatalf("no replica on %s to drain (spread: %v)", victim, pods)
	}
	// kubectl drain: cordon, then evict (the eviction API) every pod but DaemonSet pods.
	uncordoned := false
	defer func() { // a failed drain must not leave the node cordoned for what follows
		if !uncordoned {
			_, _ = ct.kubectl(context.Background(), "uncordon", victim)
		}
	}()
	if out, err := ct.kubectl(ctx, "drain", victim, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=2m"); err != nil {
		t.Fatalf("kubectl drain: %v\n%s", err, out)
	}
	poll(ctx, t, 2*time.Minute, "evicted pods gone from "+victim, func(ctx context.Context) error {
		l, err := ct.cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=drained", FieldSelector: "spec.nodeName=" + victim})
		if err != nil {
			return err
		}
		if len(l.Items) > 0 {
			return fmt.Errorf("%d pods left", len(l.Items))
		}
		return nil
	})
	pods = ct.waitDeployment(ctx, t, dep.Name, 2)
	for _, p := range pods {
		if p.Spec.NodeName != other {
			t.Errorf("replacement %s on %s, want %s", p.Name, p.Spec.NodeName, other)
		}
	}
	node := ct.c.NodeByName(victim)
	for _, name := range onVictim {
		if _, err := os.Stat(node.Path(filepath.Join("/var/lib/e2e-prestop", name))); err != nil {
			t.Errorf("preStop of evicted %s did not run: %v", name, err)
		}
	}
	if out, err := ct.kubectl(ctx, "uncordon", victim); err != nil {
		t.Fatalf("kubectl uncordon: %v\n%s", err, out)
	}
	uncordoned = true
	// Uncordoned: the scheduler places pods there again.
	p := sleeper("after-uncordon")
	p.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": victim}
	if _, err := ct.cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = ct.cs.CoreV1().Pods("default").Delete(context.Background(), p.Name, metav1.DeleteOptions{})
	}()
	poll(ctx, t, time.Minute, "pod Running on the uncordoned node", func(ctx context.Context) error {
		got, err := ct.cs.CoreV1().Pods("default").Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Status.Phase != v1.PodRunning {
			return fmt.Errorf("%s", describe(got))
		}
		return nil
	})
}

// teardown: the cluster's teardown leaves no process, mount, bridge, route, iptables
// rule, cgroup or folder behind.
// matchingLines are the lines of out that re matches.
func matchingLines(re *regexp.Regexp, out []byte) []string {
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if re.MatchString(l) {
			lines = append(lines, l)
		}
	}
	return lines
}

func (ct *clusterTest) teardown(t *testing.T) {
	c := ct.c
	var pids []int
	for _, n := range c.Nodes {
		pids = append(pids, n.Pid())
	}
	c.Stop()
	for i, pid := range pids {
		if pid == 0 {
			t.Errorf("node %s had no PID 1", c.Nodes[i].Name)
			continue
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(st), ") Z ") {
			t.Errorf("node %s's systemd (pid %d) still runs", c.Nodes[i].Name, pid)
		}
	}
	// Names are matched whole: the mixed cluster (e2emix) runs alongside.
	dir := regexp.MustCompile(regexp.QuoteMeta(c.Dir) + `(/|\s|$)`)
	out, _ := exec.Command("ps", "-eo", "args").Output()
	if left := matchingLines(dir, out); len(left) > 0 {
		t.Errorf("processes naming %s remain:\n%s", c.Dir, strings.Join(left, "\n"))
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if left := matchingLines(dir, mounts); len(left) > 0 {
		t.Errorf("mounts under %s remain:\n%s", c.Dir, strings.Join(left, "\n"))
	}
	if _, err := net.InterfaceByName(c.Bridge()); err == nil {
		t.Errorf("bridge %s remains", c.Bridge())
	}
	if links := c.NodeLinks(); len(links) > 0 {
		t.Errorf("node links remain: %v", links)
	}
	named := regexp.MustCompile(`(^|[^\w-])` + regexp.QuoteMeta(c.Bridge()) + `($|[^\w-])|(^|[^\d.])` + regexp.QuoteMeta(c.Subnet()+".") + `\d`)
	for _, cmd := range [][]string{{"ip", "route"}, {"iptables-save"}} {
		out, _ := exec.Command(cmd[0], cmd[1:]...).Output()
		if left := matchingLines(named, out); len(left) > 0 {
			t.Errorf("%s still names the cluster:\n%s", cmd[0], strings.Join(left, "\n"))
		}
	}
	for _, h := range testbed.CgroupHierarchies() {
		if m, _ := filepath.Glob(filepath.Join(h, "mkcl-"+c.Name()+"-*")); len(m) > 0 {
			t.Errorf("cgroups remain: %v", m)
		}
	}
	if _, err := os.Stat(c.Dir); err == nil {
		t.Errorf("%s remains", c.Dir)
	}
}

// nodeLost: a worker's kubelet stops; the node goes Unknown, the NoExecute taint evicts its
// pods after their tolerationSeconds and they are replaced on the other worker. The
// kubelet starts again: the node is Ready and the evicted pods' containers are removed
// (their API objects too, which waited for the node).
func (ct *clusterTest) nodeLost(ctx context.Context, t *testing.T) {
	ws := ct.workers()
	victim, other := ws[0], ws[len(ws)-1]
	dep := webDeployment("lost", 2)
	spec := &dep.Spec.Template.Spec
	spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{
		NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{
			{Key: "kubernetes.io/hostname", Operator: v1.NodeSelectorOpIn, Values: []string{victim.Name, other.Name}}}}}}}}
	spec.Containers[0].Lifecycle = nil
	for _, key := range []string{"node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"} {
		spec.Tolerations = append(spec.Tolerations, v1.Toleration{Key: key, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoExecute, TolerationSeconds: ptr(int64(5))})
	}
	if _, err := ct.cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = ct.cs.AppsV1().Deployments("default").Delete(context.Background(), dep.Name, metav1.DeleteOptions{})
	}()
	pods := ct.waitDeployment(ctx, t, dep.Name, 2)
	var lost []v1.Pod
	for _, p := range pods {
		if p.Spec.NodeName == victim.Name {
			lost = append(lost, p)
		}
	}
	if len(lost) == 0 {
		t.Fatalf("no replica on %s (spread: %v)", victim.Name, pods)
	}
	if _, err := victim.Run("systemctl", "stop", "kubelet"); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted {
			_, _ = victim.Run("systemctl", "start", "kubelet")
		}
	}()
	poll(ctx, t, 3*time.Minute, victim.Name+" not Ready, tainted unreachable", func(ctx context.Context) error {
		n, err := ct.cs.CoreV1().Nodes().Get(ctx, victim.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, taint := range n.Spec.Taints {
			if taint.Key == "node.kubernetes.io/unreachable" && taint.Effect == v1.TaintEffectNoExecute {
				return nil
			}
		}
		return fmt.Errorf("taints %v, conditions %v", n.Spec.Taints, n.Status.Conditions)
	})
	pods = ct.waitDeployment(ctx, t, dep.Name, 2)
	for _, p := range pods {
		if p.Spec.NodeName != other.Name {
			t.Errorf("replacement %s on %s, want %s", p.Name, p.Spec.NodeName, other.Name)
		}
	}
	if _, err := victim.Run("systemctl", "start", "kubelet"); err != nil {
		t.Fatal(err)
	}
	restarted = true
	poll(ctx, t, 2*time.Minute, victim.Name+" Ready again", func(ctx context.Context) error {
		n, err := ct.cs.CoreV1().Nodes().Get(ctx, victim.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == v1.NodeReady && c.Status == v1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("conditions %v", n.Status.Conditions)
	})
	for _, p := range lost {
		poll(ctx, t, 2*time.Minute, "evicted "+p.Name+" gone, its containers removed", func(ctx context.Context) error {
			if _, err := ct.cs.CoreV1().Pods("default").Get(ctx, p.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("pod still in the API (%v)", err)
			}
			out, err := victim.Run("ctr", "-n", "k8s.io", "containers", "ls", "-q", "labels.\"io.kubernetes.pod.uid\"=="+string(p.UID))
			if err != nil {
				return err
			}
			if strings.TrimSpace(out) != "" {
				return fmt.Errorf("containers left: %s", out)
			}
			return nil
		})
	}
}

// bandwidth: the kubernetes.io/egress-bandwidth and ingress-bandwidth annotations hold a
// pod to its rate (the CNI bandwidth plugin in the chain, as upstream's docs describe),
// measured pod to pod across nodes. containerd gives the shaper a bucket of about 512 MiB
// that passes at full speed first, so each transfer is that bucket plus a few seconds at
// the rate, and the rate is measured over the last part only.
func (ct *clusterTest) bandwidth(ctx context.Context, t *testing.T) {
	const limit = 100e6 // bits/s: "100M"
	w1, w2 := ct.workers()[0], ct.workers()[len(ct.workers())-1]
	server := func(name string, annotations map[string]string) string {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: annotations},
			Spec: v1.PodSpec{NodeName: w1.Name, TerminationGracePeriodSeconds: ptr(int64(1)),
				Containers: []v1.Container{{Name: "serve", Image: testbed.TestAppImage, Args: []string{"serve", "--http=:8080"}}}}}
		if _, err := ct.cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ct.cs.CoreV1().Pods("default").Delete(context.Background(), name, metav1.DeleteOptions{}) })
		var ip string
		poll(ctx, t, time.Minute, name+" Running", func(ctx context.Context) error {
			got, err := ct.cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got.Status.Phase != v1.PodRunning || got.Status.PodIP == "" {
				return fmt.Errorf("%s", describe(got))
			}
			ip = got.Status.PodIP
			return nil
		})
		return ip
	}
	shaped := server("bw-shaped", map[string]string{"kubernetes.io/egress-bandwidth": "100M"})
	free := server("bw-free", nil)
	// The shaper's bucket, as the runtime set it for this rate.
	var burst int64
	poll(ctx, t, 30*time.Second, "a 100 Mbit/s shaper on "+w1.Name, func(context.Context) error {
		out, err := w1.Run("tc", "-j", "qdisc", "show")
		if err != nil {
			return err
		}
		var qdiscs []struct {
			Kind    string
			Options struct{ Rate, Burst int64 }
		}
		if err := json.Unmarshal([]byte(out), &qdiscs); err != nil {
			return err
		}
		for _, q := range qdiscs {
			if q.Kind == "tbf" && q.Options.Rate == limit/8 {
				burst = q.Options.Burst
				return nil
			}
		}
		return fmt.Errorf("no tbf at %d bytes/s: %s", int64(limit/8), out)
	})
	tail := int64(limit / 8 * 2) // two seconds at the rate
	total := burst + tail + int64(limit/8)
	measure := func(annotations map[string]string, ip string) float64 {
		out, err := ct.tryPodAnnotated(ctx, w2.Name, annotations, 2*time.Minute,
			"rate", "--tail="+strconv.FormatInt(tail, 10), "http://"+ip+":8080/bytes?n="+strconv.FormatInt(total, 10))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range strings.Fields(out) {
			if v, ok := strings.CutPrefix(f, "tail_bits_per_second="); ok {
				r, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
		}
		t.Fatalf("no rate in %q", out)
		return 0
	}
	inRange := func(what string, r float64) {
		if r < 0.6*limit || r > 1.25*limit {
			t.Errorf("%s: %.0f Mbit/s, want about %.0f", what, r/1e6, limit/1e6)
		}
	}
	within := func(what string, r float64) {
		t.Logf("%s: %.0f Mbit/s after the bucket", what, r/1e6)
		inRange(what, r)
	}
	within("egress-bandwidth on the server", measure(nil, shaped))
	within("ingress-bandwidth on the client", measure(map[string]string{"kubernetes.io/ingress-bandwidth": "100M"}, free))
	if r := measure(nil, free); r < 3*limit {
		t.Errorf("no annotation: %.0f Mbit/s; the unshaped path must be much faster than %.0f for the test to mean anything", r/1e6, limit/1e6)
	}
}

// reset: kubeadm reset on a worker leaves it clean: its kubelet stopped, no pod left in its
// containerd, kubeadm's and the kubelet's files gone; the node is deleted from the cluster
// by the admin as kubeadm's docs say.
func (ct *clusterTest) reset(ctx context.Context, t *testing.T) {
	n := ct.workers()[len(ct.workers())-1]
	if out, err := n.Run("kubeadm", "reset", "--force"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, _ := n.Run("systemctl", "is-active", "kubelet"); strings.TrimSpace(out) == "active" {
		t.Error("kubelet still active after kubeadm reset")
	}
	out, err := n.Run("ctr", "-n", "k8s.io", "containers", "ls", "-q")
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("containers left after kubeadm reset (%v): %s", err, out)
	}
	for _, p := range []string{"/etc/kubernetes/kubelet.conf", "/etc/kubernetes/bootstrap-kubelet.conf", "/var/lib/kubelet/config.yaml"} {
		if _, err := os.Stat(n.Path(p)); err == nil {
			t.Errorf("%s left after kubeadm reset", p)
		}
	}
	for _, d := range []string{"/etc/kubernetes/pki", "/etc/kubernetes/manifests", "/var/lib/kubelet"} { // emptied, kept
		if entries, err := os.ReadDir(n.Path(d)); err == nil && len(entries) > 0 {
			t.Errorf("%s not emptied by kubeadm reset: %d entries", d, len(entries))
		}
	}
	if err := ct.cs.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil {
		t.Error(err)
	}
}

// top: the metrics-server add-on (its image built here, run as a pod on a worker) scrapes
// every node's /metrics/resource, upstream kubelets' too: `kubectl top node` lists each
// node with CPU and memory, and `kubectl top pod` the kube-system pods.
func (ct *clusterTest) top(ctx context.Context, t *testing.T) {
	poll(ctx, t, 2*time.Minute, "kubectl top node with every node", func(ctx context.Context) error {
		out, err := ct.kubectl(ctx, "top", "node", "--no-headers")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		rows := map[string][]string{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(line); len(f) >= 5 {
				rows[f[0]] = f
			}
		}
		for _, n := range ct.c.Nodes {
			f := rows[n.Name]
			if f == nil || f[1] == "0m" || f[3] == "0Mi" || strings.Contains(strings.Join(f, " "), "unknown") {
				return fmt.Errorf("node %s: %v in\n%s", n.Name, f, out)
			}
		}
		return nil
	})
	poll(ctx, t, time.Minute, "kubectl top pod -n kube-system", func(ctx context.Context) error {
		out, err := ct.kubectl(ctx, "top", "pod", "-n", "kube-system", "--no-headers")
		if err != nil || !strings.Contains(out, "kube-apiserver-") || !strings.Contains(out, "metrics-server-") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
}
