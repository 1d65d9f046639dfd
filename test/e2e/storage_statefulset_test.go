package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// TestStorageStatefulSet: a StatefulSet of 3 with volumeClaimTemplates on the default
// StorageClass (local-path, as kind ships it), on one node. Each replica keeps its own
// identity in its own volume: a deleted pod comes back to its data, and so does a replica
// scaled away and back. Deleting the set and its claims deletes the PVs and their folders.
func TestStorageStatefulSet(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	startLocalPath(ctx, t)
	k := startKubelet(t, "storage-sts")
	watchNode(ctx, t, k.NodeName, isReady)
	statefulSetKeepsData(ctx, t, k, nil, func(pv *v1.PersistentVolume) string {
		if pv.Spec.HostPath == nil {
			t.Fatalf("PV %s is not a hostPath one: %+v", pv.Name, pv.Spec.PersistentVolumeSource)
		}
		return pv.Spec.HostPath.Path
	}, true)
}

// statefulSetKeepsData runs a StatefulSet of 3 on node k with claims of class (nil: the
// default), checks each replica's data in its volume's folder on the host (dirOf) through
// a pod deletion and a scale down and up, then deletes the set and its claims and waits
// for the PVs (and, with foldersGo, their folders) to go.
func statefulSetKeepsData(ctx context.Context, t *testing.T, k *testbed.Kubelet, class *string, dirOf func(*v1.PersistentVolume) string, foldersGo bool) {
	t.Helper()
	name := fmt.Sprintf("sts%d", time.Now().UnixNano()%100000)
	labels := map[string]string{"app": name}
	sets := bed.Client.AppsV1().StatefulSets("default")
	claims := bed.Client.CoreV1().PersistentVolumeClaims("default")
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr(int32(3)), ServiceName: name, PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: v1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: newPod("",
				// The first start writes the pod's identity; every start is counted.
				"sh", "-c", `[ -f /data/id ] || echo "$POD" > /data/id; echo start >> /data/starts; sleep 3600`).Spec},
			VolumeClaimTemplates: []v1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: v1.PersistentVolumeClaimSpec{AccessModes: []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce}, StorageClassName: class,
					Resources: v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse("16Mi")}}}}},
		},
	}
	spec := &sts.Spec.Template.Spec
	spec.NodeSelector = map[string]string{v1.LabelHostname: k.NodeName}
	spec.Containers[0].Env = []v1.EnvVar{{Name: "POD", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
	spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data"}}
	if _, err := sets.Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = sets.Delete(ctx, name, metav1.DeleteOptions{})
		for i := range 3 {
			_ = claims.Delete(ctx, fmt.Sprintf("data-%s-%d", name, i), metav1.DeleteOptions{})
		}
	})

	pvNames := make([]string, 3)
	folder := func(i int) string {
		t.Helper()
		c, err := claims.Get(ctx, fmt.Sprintf("data-%s-%d", name, i), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pv, err := bed.Client.CoreV1().PersistentVolumes().Get(ctx, c.Spec.VolumeName, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("PV of claim %s: %v", c.Name, err)
		}
		pvNames[i] = pv.Name
		return dirOf(pv)
	}
	waitReady(ctx, t, name, 3)
	dirs := make([]string, 3)
	for i := range 3 {
		dirs[i] = folder(i)
		waitFile(ctx, t, filepath.Join(dirs[i], "id"), fmt.Sprintf("%s-%d", name, i))
		waitFile(ctx, t, filepath.Join(dirs[i], "starts"), "start")
	}

	// A deleted replica comes back (a new pod) to its own data.
	old, err := bed.Client.CoreV1().Pods("default").Get(ctx, name+"-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := bed.Client.CoreV1().Pods("default").Delete(ctx, old.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	watchPod(ctx, t, old, "back as a new pod, Running", func(p *v1.Pod) bool { return p.UID != old.UID && p.Status.Phase == v1.PodRunning })
	waitFile(ctx, t, filepath.Join(dirs[1], "starts"), "start\nstart")
	waitFile(ctx, t, filepath.Join(dirs[1], "id"), name+"-1")

	// Scaled down to one and up again: replica 2's claim stayed, and its data with it.
	scale(ctx, t, name, 1)
	for _, i := range []int{1, 2} {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", name, i), Namespace: "default"}}
		if err := waitPodGone(ctx, p); err != nil {
			t.Fatalf("replica %d not gone after the scale down: %v", i, err)
		}
	}
	scale(ctx, t, name, 3)
	waitReady(ctx, t, name, 3)
	waitFile(ctx, t, filepath.Join(dirs[2], "starts"), "start\nstart")
	waitFile(ctx, t, filepath.Join(dirs[2], "id"), name+"-2")
	if f := folder(2); f != dirs[2] {
		t.Errorf("replica 2 came back on %s, want its old volume %s", f, dirs[2])
	}

	// Gone: the set, then its claims; the PVs (reclaim policy Delete) and folders follow.
	if err := sets.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", name, i), Namespace: "default"}}
		if err := waitPodGone(ctx, p); err != nil {
			t.Fatal(err)
		}
		if err := claims.Delete(ctx, fmt.Sprintf("data-%s-%d", name, i), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i, d := range dirs {
		for {
			_, err := bed.Client.CoreV1().PersistentVolumes().Get(ctx, pvNames[i], metav1.GetOptions{})
			_, serr := os.Stat(d)
			if apierrors.IsNotFound(err) && (!foldersGo || os.IsNotExist(serr)) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("PV %s (%v) or its folder %s (%v) still there after its claim was deleted", pvNames[i], err, d, serr)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func scale(ctx context.Context, t *testing.T, name string, n int32) {
	t.Helper()
	patch := fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, n)
	if _, err := bed.Client.AppsV1().StatefulSets("default").Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitReady waits for n ready replicas of the StatefulSet.
func waitReady(ctx context.Context, t *testing.T, name string, n int32) {
	t.Helper()
	var last string
	for {
		s, err := bed.Client.AppsV1().StatefulSets("default").Get(ctx, name, metav1.GetOptions{})
		if err == nil && s.Status.ReadyReplicas == n && s.Status.Replicas == n {
			return
		}
		if err != nil && !apierrors.IsNotFound(err) {
			last = err.Error()
		} else if s != nil {
			last = fmt.Sprintf("%d ready of %d", s.Status.ReadyReplicas, s.Status.Replicas)
		}
		if ctx.Err() != nil {
			pods, _ := bed.Client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + name})
			var ps []string
			for i := range pods.Items {
				ps = append(ps, describe(&pods.Items[i]))
			}
			t.Fatalf("StatefulSet %s: %s, want %d ready; pods:\n%s", name, last, n, strings.Join(ps, "\n"))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestStorageGenericEphemeral: a pod with a generic ephemeral volume on the default class.
// The ephemeral-volume controller makes the claim <pod>-<volume>, owned by the pod; the
// pod runs on it and writes into the provisioned folder; deleting the pod deletes the
// claim (garbage collection), the PV and the folder.
func TestStorageGenericEphemeral(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	startLocalPath(ctx, t)
	k := startKubelet(t, "storage-eph")
	watchNode(ctx, t, k.NodeName, isReady)

	pod := newPod("", "sh", "-c", "echo scratch > /scratch/f; sleep 3600")
	pod.Spec.NodeSelector = map[string]string{v1.LabelHostname: k.NodeName}
	pod.Spec.Volumes = []v1.Volume{{Name: "scratch", VolumeSource: v1.VolumeSource{Ephemeral: &v1.EphemeralVolumeSource{
		VolumeClaimTemplate: &v1.PersistentVolumeClaimTemplate{Spec: v1.PersistentVolumeClaimSpec{
			AccessModes: []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			Resources:   v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse("16Mi")}}}}}}}}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
	p := createPod(ctx, t, pod)
	p = watchPod(ctx, t, p, "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })

	claimName := p.Name + "-scratch"
	c, err := bed.Client.CoreV1().PersistentVolumeClaims("default").Get(ctx, claimName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ref := metav1.GetControllerOf(c); ref == nil || ref.UID != p.UID {
		t.Errorf("claim %s controller %+v, want the pod", c.Name, ref)
	}
	pv, err := bed.Client.CoreV1().PersistentVolumes().Get(ctx, c.Spec.VolumeName, metav1.GetOptions{})
	if err != nil || pv.Spec.HostPath == nil {
		t.Fatalf("PV of %s: %v %v", c.Name, pv, err)
	}
	dir := pv.Spec.HostPath.Path
	waitFile(ctx, t, filepath.Join(dir, "f"), "scratch")

	if err := bed.Client.CoreV1().Pods("default").Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		_, cerr := bed.Client.CoreV1().PersistentVolumeClaims("default").Get(ctx, claimName, metav1.GetOptions{})
		_, perr := bed.Client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
		_, serr := os.Stat(dir)
		if apierrors.IsNotFound(cerr) && apierrors.IsNotFound(perr) && os.IsNotExist(serr) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("after the pod's deletion: claim %v, PV %v, folder %v; want all gone", cerr, perr, serr)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
