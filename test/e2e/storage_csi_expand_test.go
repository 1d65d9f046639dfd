package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// TestStorageCSIExpand: an online expansion of a CSI volume in use. The test plays
// external-resizer (not served here): the claim asks for 2Gi, the PV grows to 2Gi and the
// claim is marked NodeResizePending. The node agent then calls NodeExpandVolume on the
// published volume, and the claim's status gets the new capacity with the resize status
// and conditions cleared; the pod sees the driver's new capacity inside the volume, and
// upstream's FileSystemResizeSuccessful event is on the pod.
func TestStorageCSIExpand(t *testing.T) {
	ctx := ctxFor(t, 4*time.Minute)
	k := startKubelet(t, "csi-x")
	watchNode(ctx, t, k.NodeName, isReady)
	d := startCSI(ctx, t, k)
	suffix := fmt.Sprint(time.Now().UnixNano() % 1000000)
	name := "grow-" + suffix
	// The claim's class must allow expansion, or the API refuses the larger request; it
	// provisions nothing (the driver's provisioner would race the static PV).
	class := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "e2e-static-" + name},
		Provisioner: "kubernetes.io/no-provisioner", AllowVolumeExpansion: ptr(true)}
	if _, err := bed.Client.StorageV1().StorageClasses().Create(ctx, class, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = bed.Client.StorageV1().StorageClasses().Delete(context.Background(), class.Name, metav1.DeleteOptions{})
	})
	claim := csiClaim(ctx, t, name, testbed.CSIDriverName, name, k.NodeName)

	pod := newPod(k.NodeName, "sh", "-c", "while true; do cat /data/.csi-capacity-bytes > /data/seen 2>/dev/null; sleep 1; done")
	onClaim(pod, claim.Name)
	p := watchPod(ctx, t, createPod(ctx, t, pod), "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	claims := bed.Client.CoreV1().PersistentVolumeClaims("default")
	watchUntilPoll(ctx, t, "claim Bound with 1Gi", func() (bool, string) {
		c, err := claims.Get(ctx, claim.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		return c.Status.Phase == v1.ClaimBound && c.Status.Capacity.Storage().String() == "1Gi", fmt.Sprintf("%+v", c.Status)
	})

	two := resource.MustParse("2Gi")
	c, err := claims.Get(ctx, claim.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Spec.Resources.Requests[v1.ResourceStorage] = two
	if c, err = claims.Update(ctx, c, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The resizer's part: the volume grew on the storage side, the node must finish.
	pv, err := bed.Client.CoreV1().PersistentVolumes().Get(ctx, c.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pv.Spec.Capacity[v1.ResourceStorage] = two
	if _, err := bed.Client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.Status.AllocatedResources = v1.ResourceList{v1.ResourceStorage: two}
	c.Status.AllocatedResourceStatuses = map[v1.ResourceName]v1.ClaimResourceStatus{v1.ResourceStorage: v1.PersistentVolumeClaimNodeResizePending}
	c.Status.Conditions = []v1.PersistentVolumeClaimCondition{{Type: v1.PersistentVolumeClaimFileSystemResizePending, Status: v1.ConditionTrue,
		LastTransitionTime: metav1.Now(), Message: "Waiting for user to (re-)start a pod to finish file system resize of volume on node."}}
	if _, err := claims.UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	watchUntilPoll(ctx, t, "claim status 2Gi, resize finished", func() (bool, string) {
		c, err := claims.Get(ctx, claim.Name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		resizing := slices.ContainsFunc(c.Status.Conditions, func(c v1.PersistentVolumeClaimCondition) bool {
			return c.Type == v1.PersistentVolumeClaimResizing || c.Type == v1.PersistentVolumeClaimFileSystemResizePending
		})
		return c.Status.Capacity.Storage().Cmp(two) == 0 && len(c.Status.AllocatedResourceStatuses) == 0 && !resizing,
			fmt.Sprintf("%+v", c.Status)
	})
	waitPodEvent(ctx, t, p, fmt.Sprintf(` Normal FileSystemResizeSuccessful MountVolume.NodeExpandVolume succeeded for volume %q %s`, pv.Name, k.NodeName))
	waitFile(ctx, t, filepath.Join(d.VolumeDir(name), "seen"), fmt.Sprint(two.Value()))
	if got := methods(callsOf(d, name)); !strings.Contains(strings.Join(got, " "), "NodeExpandVolume") {
		t.Errorf("no NodeExpandVolume; calls %q", got)
	}
	got, _ := bed.Client.CoreV1().Pods("default").Get(ctx, p.Name, metav1.GetOptions{})
	if cs := containerStatus(got, "main"); cs == nil || cs.RestartCount != 0 {
		t.Errorf("the pod restarted during the expansion: %s", describe(got))
	}
}

// TestStorageCSIStatefulSet: the StatefulSet of TestStorageStatefulSet on the bed's CSI
// class (dynamic provisioning by the driver's provisioner, WaitForFirstConsumer): each
// replica's data in its own CSI volume through a pod deletion and a scale down and up; then
// a generic ephemeral volume of the class.
func TestStorageCSIStatefulSet(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	k := startKubelet(t, "csi-s")
	watchNode(ctx, t, k.NodeName, isReady)
	d := startCSI(ctx, t, k)
	statefulSetKeepsData(ctx, t, k, ptr(testbed.CSIStorageClass), func(pv *v1.PersistentVolume) string {
		if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != testbed.CSIDriverName {
			t.Fatalf("PV %s is not one of the CSI driver: %+v", pv.Name, pv.Spec.PersistentVolumeSource)
		}
		return d.VolumeDir(pv.Spec.CSI.VolumeHandle)
	}, false)

	pod := newPod("", "sh", "-c", "echo scratch > /scratch/f; sleep 3600")
	pod.Spec.NodeSelector = map[string]string{v1.LabelHostname: k.NodeName}
	pod.Spec.Volumes = []v1.Volume{{Name: "scratch", VolumeSource: v1.VolumeSource{Ephemeral: &v1.EphemeralVolumeSource{
		VolumeClaimTemplate: &v1.PersistentVolumeClaimTemplate{Spec: v1.PersistentVolumeClaimSpec{
			StorageClassName: ptr(testbed.CSIStorageClass), AccessModes: []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			Resources: v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse("16Mi")}}}}}}}}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
	p := watchPod(ctx, t, createPod(ctx, t, pod), "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	c, err := bed.Client.CoreV1().PersistentVolumeClaims("default").Get(ctx, p.Name+"-scratch", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pv, err := bed.Client.CoreV1().PersistentVolumes().Get(ctx, c.Spec.VolumeName, metav1.GetOptions{})
	if err != nil || pv.Spec.CSI == nil {
		t.Fatalf("PV of %s: %v %v", c.Name, pv, err)
	}
	waitFile(ctx, t, filepath.Join(d.VolumeDir(pv.Spec.CSI.VolumeHandle), "f"), "scratch")
	target := csiTargetPath(k, p, pv.Name)
	deletePodAndWaitPathGone(ctx, t, p, target, time.Minute, "generic ephemeral CSI volume")
	watchUntilPoll(ctx, t, "the ephemeral claim and its PV deleted", func() (bool, string) {
		_, cerr := bed.Client.CoreV1().PersistentVolumeClaims("default").Get(ctx, c.Name, metav1.GetOptions{})
		_, perr := bed.Client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(cerr) && apierrors.IsNotFound(perr), fmt.Sprintf("claim %v, PV %v", cerr, perr)
	})
}
