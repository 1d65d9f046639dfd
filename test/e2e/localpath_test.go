package e2e

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/yaml"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// TestStorageLocalPath: the bed's default StorageClass "standard" (rancher's
// local-path-provisioner, as kind ships it) provisions a claim that names no class for a
// pod the scheduler puts on the node: a helper pod on that node makes the folder, the PV
// is a hostPath under the bed's folder with node affinity to the node, and deleting the
// claim deletes the PV and, through a second helper pod, the folder. The pod runs on the
// claim and its write lands in the PV's folder.
func TestStorageLocalPath(t *testing.T) {
	ctx := ctxFor(t, 4*time.Minute)
	start := time.Now()
	lp := startLocalPath(ctx, t)
	k := startKubelet(t, "local-path")
	watchNode(ctx, t, k.NodeName, isReady)

	// Every helper pod the provisioner creates, as first seen.
	var mu sync.Mutex
	helpers := map[string]*v1.Pod{}
	w, err := bed.Client.CoreV1().Pods(testbed.LocalPathNamespace).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	go func() {
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*v1.Pod); ok && ev.Type == watch.Added {
				mu.Lock()
				helpers[p.Name] = p
				mu.Unlock()
			}
		}
	}()

	claims := bed.Client.CoreV1().PersistentVolumeClaims("default")
	pvc, err := claims.Create(ctx, &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "local-path-claim"},
		Spec: v1.PersistentVolumeClaimSpec{
			AccessModes: []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			Resources:   v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse("64Mi")}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = claims.Delete(context.Background(), pvc.Name, metav1.DeleteOptions{})
	})
	if sc := pvc.Spec.StorageClassName; sc == nil || *sc != testbed.DefaultStorageClass {
		t.Fatalf("claim's class %v, want the default %q", sc, testbed.DefaultStorageClass)
	}

	// Through the scheduler (WaitForFirstConsumer: it picks the node and the provisioner
	// waits for that), pinned to the node by its hostname label.
	pod := newPod("", "sh", "-c", "echo hello > /data/greeting; sleep 3600")
	pod.Spec.NodeSelector = map[string]string{v1.LabelHostname: k.NodeName}
	pod.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{
		PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: pvc.Name}}}}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data"}}
	p := createPod(ctx, t, pod)

	bound := watchUntil(ctx, t, func(o metav1.ListOptions) (watch.Interface, error) {
		o.FieldSelector = "metadata.name=" + pvc.Name
		return claims.Watch(ctx, o)
	}, func(o any) bool { return o.(*v1.PersistentVolumeClaim).Status.Phase == v1.ClaimBound }).(*v1.PersistentVolumeClaim)
	t.Logf("claim Bound %.1fs after the provisioner was up", time.Since(start).Seconds())
	pv, err := bed.Client.CoreV1().PersistentVolumes().Get(ctx, bound.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := yaml.Marshal(pv.Spec)
	t.Logf("PV %s annotations %v spec:\n%s", pv.Name, pv.Annotations, out)

	wantPath := filepath.Join(lp.DataDir, "pvc-"+string(pvc.UID)+"_default_"+pvc.Name)
	if pv.Name != "pvc-"+string(pvc.UID) {
		t.Errorf("PV name %s, want pvc-<claim uid>", pv.Name)
	}
	if hp := pv.Spec.HostPath; hp == nil || hp.Path != wantPath || hp.Type == nil || *hp.Type != v1.HostPathDirectoryOrCreate {
		t.Errorf("PV source %+v, want hostPath %s (DirectoryOrCreate)", pv.Spec.PersistentVolumeSource, wantPath)
	}
	if na := pv.Spec.NodeAffinity; na == nil || na.Required == nil || len(na.Required.NodeSelectorTerms) != 1 ||
		len(na.Required.NodeSelectorTerms[0].MatchExpressions) != 1 ||
		na.Required.NodeSelectorTerms[0].MatchExpressions[0].Key != v1.LabelHostname ||
		len(na.Required.NodeSelectorTerms[0].MatchExpressions[0].Values) != 1 ||
		na.Required.NodeSelectorTerms[0].MatchExpressions[0].Values[0] != k.NodeName {
		t.Errorf("PV node affinity %+v, want %s In [%s]", pv.Spec.NodeAffinity, v1.LabelHostname, k.NodeName)
	}
	if pv.Spec.PersistentVolumeReclaimPolicy != v1.PersistentVolumeReclaimDelete || pv.Spec.StorageClassName != testbed.DefaultStorageClass {
		t.Errorf("PV reclaim policy %s, class %q; want Delete, %q", pv.Spec.PersistentVolumeReclaimPolicy, pv.Spec.StorageClassName, testbed.DefaultStorageClass)
	}
	if fi, err := os.Stat(wantPath); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o777 {
		t.Errorf("volume folder %s: %v %v, want a folder of mode 0777 the helper pod made", wantPath, fi, err)
	}
	watchPod(ctx, t, p, "Running on the provisioned claim", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	waitFile(ctx, t, filepath.Join(wantPath, "greeting"), "hello")
	mu.Lock()
	for _, h := range helpers {
		out, _ := yaml.Marshal(h.Spec)
		t.Logf("helper pod %s spec:\n%s", h.Name, out)
		if h.Spec.NodeName != k.NodeName || h.Spec.Containers[0].Image != testbed.BusyboxImage {
			t.Errorf("helper pod %s on %q with %s, want on %s with %s", h.Name, h.Spec.NodeName, h.Spec.Containers[0].Image, k.NodeName, testbed.BusyboxImage)
		}
	}
	if len(helpers) == 0 {
		t.Error("no helper pod seen in " + testbed.LocalPathNamespace)
	}
	mu.Unlock()

	// Released: reclaim policy Delete removes the PV, and a teardown helper pod the folder.
	if err := bed.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := waitPodGone(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := claims.Delete(ctx, pvc.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := bed.Client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
		_, serr := os.Stat(wantPath)
		if apierrors.IsNotFound(err) && os.IsNotExist(serr) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("PV %s (%v) or its folder (%v) still there after the claim was deleted", pv.Name, err, serr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("PV and folder gone %.1fs after the provisioner was up", time.Since(start).Seconds())
}

// startLocalPath starts the bed's default StorageClass for one test (it would give every
// claim of the shared bed a class otherwise).
func startLocalPath(ctx context.Context, t *testing.T) *testbed.LocalPath {
	t.Helper()
	start := time.Now()
	lp, err := bed.StartLocalPath(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("local-path-provisioner up in %.1fs", time.Since(start).Seconds())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("local-path-provisioner log:\n%s", lp.Tail(60))
		}
		lp.Stop()
	})
	return lp
}
