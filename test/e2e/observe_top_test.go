package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestObserveTop: metrics-server (built from its module, registered as the metrics API)
// scrapes the node's /metrics/resource: `kubectl top pod --containers` shows a container
// burning one core at ~1000m (within 20 %) and one holding 100 MiB at that (within 10 %),
// `kubectl top node` shows the node, and a HorizontalPodAutoscaler scales a Deployment of
// burners from 1 to 3 on CPU.
func TestObserveTop(t *testing.T) {
	ctx := ctxFor(t, 6*time.Minute)
	ms, err := bed.StartMetricsServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("metrics-server log:\n%s", ms.Tail(40))
		}
		ms.Stop()
	})
	k := startKubelet(t, "obs-top")
	watchNode(ctx, t, k.NodeName, isReady)

	burner := newPod(k.NodeName, "sh", "-c", "while :; do :; done")
	holder := newPod(k.NodeName, "sh", "-c", "dd if=/dev/zero of=/mem/fill bs=1M count=100 && sleep 3600")
	holder.Spec.Volumes = []v1.Volume{{Name: "mem", VolumeSource: v1.VolumeSource{
		EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: ptr(resource.MustParse("200Mi"))}}}}
	holder.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "mem", MountPath: "/mem"}}
	for _, p := range []*v1.Pod{burner, holder} {
		watchPod(ctx, t, createPod(ctx, t, p), "Running", containerRunning("main"))
	}

	// CPU in millicores and memory in MiB of container main, as `kubectl top` prints them.
	topContainer := func(pod string) (cpu, mem int64, out string) {
		b, err := kubectlCmd(ctx, "top", "pod", "-n", "default", "--containers", pod, "--no-headers").CombinedOutput()
		out = string(b)
		f := strings.Fields(out)
		if err != nil || len(f) < 4 || f[1] != "main" {
			return -1, -1, out
		}
		cpu, _ = strconv.ParseInt(strings.TrimSuffix(f[2], "m"), 10, 64)
		mem, _ = strconv.ParseInt(strings.TrimSuffix(f[3], "Mi"), 10, 64)
		return cpu, mem, out
	}
	pollTop(ctx, t, "burner at ~1000m", func() (bool, string) {
		cpu, _, out := topContainer(burner.Name)
		return cpu >= 800 && cpu <= 1200, out
	})
	pollTop(ctx, t, "holder at ~100Mi", func() (bool, string) {
		_, mem, out := topContainer(holder.Name)
		return mem >= 100 && mem <= 110, out
	})
	pollTop(ctx, t, "node row", func() (bool, string) {
		b, err := kubectlCmd(ctx, "top", "node", k.NodeName, "--no-headers").CombinedOutput()
		f := strings.Fields(string(b))
		if err != nil || len(f) < 5 || f[0] != k.NodeName {
			return false, string(b)
		}
		cpu, _ := strconv.ParseInt(strings.TrimSuffix(f[1], "m"), 10, 64)
		return cpu >= 800, string(b) // the burner alone uses a core
	})
	scaleOnCPU(ctx, t, k.NodeName)
}

// pollTop retries check (a `kubectl top` reading) every 2 s until it holds: metrics-server
// needs two scrapes (15 s apart) before it reports a container.
func pollTop(ctx context.Context, t *testing.T, what string, check func() (bool, string)) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		var ok bool
		if ok, last = check(); ok {
			return
		}
		if ctx.Err() != nil {
			break
		}
	}
	t.Fatalf("%s: not seen in 2 minutes; last kubectl top: %q", what, last)
}

// scaleOnCPU: a Deployment of one burner requesting 100m, with an HPA aiming at 50 % CPU
// and at most 3 replicas, is scaled to 3.
func scaleOnCPU(ctx context.Context, t *testing.T, node string) {
	t.Helper()
	labels := map[string]string{"app": "hpa-burner"}
	tmpl := newPod(node, "sh", "-c", "while :; do :; done")
	tmpl.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": node}
	tmpl.Spec.NodeName = ""
	tmpl.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("100m")}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "hpa-burner", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: tmpl.Spec}},
	}
	deps := bed.Client.AppsV1().Deployments("default")
	if _, err := deps.Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hpas := bed.Client.AutoscalingV2().HorizontalPodAutoscalers("default")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = hpas.Delete(ctx, dep.Name, metav1.DeleteOptions{})
		_ = deps.Delete(ctx, dep.Name, metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationForeground)})
		for {
			pods, err := bed.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=hpa-burner"})
			if err != nil || len(pods.Items) == 0 || ctx.Err() != nil {
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
	})
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: dep.Name, Namespace: "default"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: dep.Name},
			MinReplicas:    ptr(int32(1)), MaxReplicas: 3,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: v1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr(int32(50))}}}},
		},
	}
	if _, err := hpas.Create(ctx, hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var last string
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(2 * time.Second) {
		h, err := hpas.Get(ctx, hpa.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d, err := deps.Get(ctx, dep.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		last = fmt.Sprintf("HPA desired %d, current %d, conditions %v; deployment replicas %d, ready %d",
			h.Status.DesiredReplicas, h.Status.CurrentReplicas, h.Status.Conditions, *d.Spec.Replicas, d.Status.ReadyReplicas)
		if *d.Spec.Replicas == 3 && d.Status.ReadyReplicas == 3 {
			return
		}
	}
	t.Fatalf("the HPA did not scale the deployment to 3 ready replicas: %s", last)
}
