package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/minikubelet/minikubelet/test/cluster"
)

// cgroups: every worker (kubeadm's cgroupDriver: systemd, the node's own systemd) keeps
// upstream's slices with upstream's limits: kubepods.slice holds the node's capacity,
// kubepods-burstable.slice the shares of its Burstable pods' CPU requests, a Guaranteed
// and a Burstable pod get their pod slice with their limits, and a deleted pod's slice
// is stopped. In the mixed cluster the upstream worker passes the same checks.
func (ct *clusterTest) cgroups(ctx context.Context, t *testing.T) {
	for _, n := range ct.workers() {
		t.Run(n.Name, func(t *testing.T) { ct.nodeCgroups(ctx, t, n) })
	}
}

func (ct *clusterTest) nodeCgroups(ctx context.Context, t *testing.T, n *cluster.Node) {
	g, b := sleeper("cg-guaranteed-"+n.Name), sleeper("cg-burstable-"+n.Name)
	g.Spec.NodeName, b.Spec.NodeName = n.Name, n.Name
	g.Spec.Containers[0].Resources = cpuMemResources("200m", "64Mi", "200m", "64Mi")
	b.Spec.Containers[0].Resources = cpuMemResources("100m", "32Mi", "", "64Mi")
	var pods []*v1.Pod
	for _, p := range []*v1.Pod{g, b} {
		created, err := ct.cs.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, created)
	}
	defer func() {
		for _, p := range pods {
			_ = ct.cs.CoreV1().Pods("default").Delete(context.Background(), p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))})
		}
	}()
	for _, p := range pods {
		poll(ctx, t, time.Minute, p.Name+" Running", func(ctx context.Context) error {
			got, err := ct.cs.CoreV1().Pods("default").Get(ctx, p.Name, metav1.GetOptions{})
			if err == nil && got.Status.Phase != v1.PodRunning {
				err = fmt.Errorf("%s", describe(got))
			}
			return err
		})
	}
	node, err := ct.cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	slice := func(class v1.PodQOSClass, uid string) string {
		s := "kubepods.slice/"
		if class != v1.PodQOSGuaranteed {
			s += "kubepods-" + strings.ToLower(string(class)) + ".slice/kubepods-" + strings.ToLower(string(class)) + "-"
		} else {
			s += "kubepods-"
		}
		return s + "pod" + strings.ReplaceAll(uid, "-", "_") + ".slice"
	}
	gs, bs := slice(v1.PodQOSGuaranteed, string(pods[0].UID)), slice(v1.PodQOSBurstable, string(pods[1].UID))
	memCap := node.Status.Capacity.Memory().Value()
	checks := []struct{ file, want string }{
		{"cpu/kubepods.slice/cpu.shares", strconv.FormatInt(node.Status.Capacity.Cpu().MilliValue()*1024/1000, 10)},
		{"memory/kubepods.slice/memory.limit_in_bytes", strconv.FormatInt(memCap-memCap%4096, 10)},
		{"cpu/kubepods.slice/kubepods-besteffort.slice/cpu.shares", "2"},
		{"cpu/" + gs + "/cpu.shares", "204"},
		{"cpu/" + gs + "/cpu.cfs_quota_us", "20000"},
		{"cpu/" + gs + "/cpu.cfs_period_us", "100000"},
		{"memory/" + gs + "/memory.limit_in_bytes", "67108864"},
		{"cpu/" + bs + "/cpu.shares", "102"},
		{"cpu/" + bs + "/cpu.cfs_quota_us", "-1"},
		{"memory/" + bs + "/memory.limit_in_bytes", "67108864"},
	}
	for _, c := range checks {
		if got := nodeCgroupFile(n, c.file); got != c.want {
			t.Errorf("%s: %s = %s, want %s", n.Name, c.file, got, c.want)
		}
	}
	// The burstable slice follows the node's Burstable pods (others may come and go).
	poll(ctx, t, 90*time.Second, "kubepods-burstable.slice's shares are its pods' CPU requests", func(ctx context.Context) error {
		want := ct.burstableShares(ctx, n.Name)
		if got := nodeCgroupFile(n, "cpu/kubepods.slice/kubepods-burstable.slice/cpu.shares"); got != want {
			return fmt.Errorf("cpu.shares %s, want %s", got, want)
		}
		return nil
	})
	// A deleted pod's slice goes in every hierarchy.
	if err := ct.cs.CoreV1().Pods("default").Delete(ctx, pods[1].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(ctx, t, time.Minute, "the deleted pod's slice stopped", func(context.Context) error {
		if out, err := n.Run("sh", "-c", "ls -d /sys/fs/cgroup/*/"+bs+" 2>/dev/null || true"); err != nil || strings.TrimSpace(out) != "" {
			return fmt.Errorf("left: %q %v", out, err)
		}
		return nil
	})
}

// nodeCgroupFile reads a cgroup file inside node n (path under /sys/fs/cgroup).
func nodeCgroupFile(n *cluster.Node, file string) string {
	out, err := n.Run("cat", "/sys/fs/cgroup/"+file)
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(out)
}

// burstableShares is upstream's burstable QoS shares for the node's Burstable pods that
// may still run: their CPU requests as shares, at least 2.
func (ct *clusterTest) burstableShares(ctx context.Context, node string) string {
	pods, err := ct.cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return err.Error()
	}
	var milli int64
	for _, p := range pods.Items {
		if p.Status.QOSClass != v1.PodQOSBurstable || p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
			continue
		}
		req := resourcehelper.PodRequests(&p, resourcehelper.PodResourcesOptions{})
		milli += req.Cpu().MilliValue()
	}
	return strconv.FormatInt(max(milli*1024/1000, 2), 10)
}
