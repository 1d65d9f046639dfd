package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// staticClaim makes a PV with src in a storage class of its own (no StorageClass object:
// the PV controller binds at once) and a claim for it; both go when the test ends.
func staticClaim(ctx context.Context, t *testing.T, name string, src v1.PersistentVolumeSource, affinity *v1.VolumeNodeAffinity) *v1.PersistentVolumeClaim {
	t.Helper()
	return staticClaimMode(ctx, t, name, src, affinity, v1.PersistentVolumeFilesystem)
}

// staticClaimMode is staticClaim with PV and claim in the given volume mode.
func staticClaimMode(ctx context.Context, t *testing.T, name string, src v1.PersistentVolumeSource, affinity *v1.VolumeNodeAffinity, mode v1.PersistentVolumeMode) *v1.PersistentVolumeClaim {
	t.Helper()
	class := "e2e-static-" + name
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PersistentVolumeSpec{PersistentVolumeSource: src, StorageClassName: class, NodeAffinity: affinity, VolumeMode: &mode,
			Capacity:                      v1.ResourceList{v1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: v1.PersistentVolumeReclaimRetain},
	}
	if _, err := bed.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = bed.Client.CoreV1().PersistentVolumes().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return createClaimMode(ctx, t, name, class, mode)
}

// createClaim asks for 1Gi of class; the claim is deleted when the test ends (after
// the pods, whose cleanups run first).
func createClaim(ctx context.Context, t *testing.T, name, class string) *v1.PersistentVolumeClaim {
	t.Helper()
	return createClaimMode(ctx, t, name, class, v1.PersistentVolumeFilesystem)
}

func createClaimMode(ctx context.Context, t *testing.T, name, class string, mode v1.PersistentVolumeMode) *v1.PersistentVolumeClaim {
	t.Helper()
	pvc := &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1.PersistentVolumeClaimSpec{StorageClassName: &class, VolumeMode: &mode,
			AccessModes: []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			Resources:   v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse("1Gi")}}},
	}
	pvc, err := bed.Client.CoreV1().PersistentVolumeClaims("default").Create(ctx, pvc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = bed.Client.CoreV1().PersistentVolumeClaims("default").Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return pvc
}

func claimVol(name, claim string, ro bool) v1.Volume {
	return v1.Volume{Name: name, VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: ro}}}
}

// onClaim mounts claim at /data in the pod's one container.
func onClaim(p *v1.Pod, claim string) {
	p.Spec.Volumes = append(p.Spec.Volumes, claimVol("data", claim, false))
	p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, v1.VolumeMount{Name: "data", MountPath: "/data"})
}

func hostnameIn(hosts ...string) *v1.VolumeNodeAffinity {
	return &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
		MatchExpressions: []v1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: v1.NodeSelectorOpIn, Values: hosts}}}}}}
}

// waitFile waits for a file on the host to hold want.
func waitFile(ctx context.Context, t *testing.T, path, want string) {
	t.Helper()
	var got string
	for {
		b, err := os.ReadFile(path)
		got = string(b)
		if err == nil && strings.TrimSpace(got) == want {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s = %q, want %q", path, got, want)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// TestStorageStaticClaims: pods on claims bound to hostPath and local PVs, as an admin
// (or kind's and k3d's local-path provisioner) makes them. The pod writes through the
// claim into the PV's folder on the host, a read-only claim refuses writes, a local PV is
// bound into the pod's folder and unbound when the pod goes, and the data outlives the
// pod.
func TestStorageStaticClaims(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	k := startKubelet(t, "storage-static")
	watchNode(ctx, t, k.NodeName, isReady)
	suffix := fmt.Sprint(time.Now().UnixNano() % 1000000)
	hostDir := filepath.Join(t.TempDir(), "hostpath-pv")
	localDir := filepath.Join(t.TempDir(), "local-pv")
	if err := os.MkdirAll(localDir, 0o755); err != nil {
		t.Fatal(err)
	}
	hp := staticClaim(ctx, t, "hp-"+suffix, v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: hostDir, Type: ptr(v1.HostPathDirectoryOrCreate)}}, nil)
	// A second PV on the same folder for the read-only claim: upstream's kubelet waits out
	// its 2-minute mount timeout when two volumes of a pod name the same claim.
	ro := staticClaim(ctx, t, "ro-"+suffix, v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: hostDir, Type: ptr(v1.HostPathDirectoryOrCreate)}}, nil)
	local := staticClaim(ctx, t, "local-"+suffix, v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: localDir}}, hostnameIn(k.NodeName))

	pod := newPod(k.NodeName, "sh", "-c", `echo "$POD" > /data/id; echo local > /local/id; `+
		`touch /ro/x 2>/dev/null; echo $? > /data/ro-rc; sleep 3600`)
	pod.Spec.Containers[0].Env = []v1.EnvVar{{Name: "POD", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
	pod.Spec.Volumes = []v1.Volume{claimVol("data", hp.Name, false), claimVol("ro", ro.Name, true), claimVol("local", local.Name, false)}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data"}, {Name: "ro", MountPath: "/ro"}, {Name: "local", MountPath: "/local"}}
	p := createPod(ctx, t, pod)
	watchPod(ctx, t, p, "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })

	waitFile(ctx, t, filepath.Join(hostDir, "id"), p.Name)
	waitFile(ctx, t, filepath.Join(localDir, "id"), "local")
	waitFile(ctx, t, filepath.Join(hostDir, "ro-rc"), "1") // touch failed: read-only

	// staticClaim names the PV as its claim.
	bind := filepath.Join(k.RootDir, "pods", string(p.UID), "volumes", "kubernetes.io~local-volume", local.Name)
	if !isMountPoint(t, bind) {
		t.Fatalf("local PV not bound at %s", bind)
	}
	deletePodAndWaitPathGone(ctx, t, p, bind, time.Minute, "local PV bind")
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), string(p.UID)) {
		t.Errorf("a mount of the deleted pod is left: %s", bind)
	}
	waitFile(ctx, t, filepath.Join(localDir, "id"), "local") // the data stays with the PV
	waitFile(ctx, t, filepath.Join(hostDir, "id"), p.Name)
}

// TestStorageClaimBadInput: a claim that is not bound, and a PV whose node affinity names
// another node. The pod waits in ContainerCreating with upstream's FailedMount events
// (the populator's text, and the mount's node affinity check); the claim's binding later
// lets the waiting pod start, and a pod without claims on the same node runs meanwhile.
func TestStorageClaimBadInput(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	k := startKubelet(t, "storage-bad")
	watchNode(ctx, t, k.NodeName, isReady)
	suffix := fmt.Sprint(time.Now().UnixNano() % 1000000)

	class := "e2e-never-" + suffix
	unbound := createClaim(ctx, t, "unbound-"+suffix, class)
	waiting := newPod(k.NodeName, "sh", "-c", "echo ok > /data/ok; sleep 3600")
	onClaim(waiting, unbound.Name)
	w := createPod(ctx, t, waiting)
	waitPodEvent(ctx, t, w, " Warning FailedMount Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[], "+
		"failed to process volumes=[data]: error processing PVC default/"+unbound.Name+": PVC is not bound")

	elsewhere := staticClaim(ctx, t, "elsewhere-"+suffix, v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: t.TempDir()}}, hostnameIn("some-other-node"))
	away := newPod(k.NodeName, "sleep", "3600")
	onClaim(away, elsewhere.Name)
	a := createPod(ctx, t, away)
	waitPodEvent(ctx, t, a, ` Warning FailedMount MountVolume.NodeAffinity check failed for volume "`+elsewhere.Name+`" : no matching NodeSelectorTerms`)

	plain := createPod(ctx, t, newPod(k.NodeName, "sleep", "3600"))
	watchPod(ctx, t, plain, "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	for _, p := range []*v1.Pod{w, a} {
		got, err := bed.Client.CoreV1().Pods("default").Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cs := containerStatus(got, "main"); got.Status.Phase != v1.PodPending || cs == nil || cs.State.Waiting == nil || cs.State.Waiting.Reason != "ContainerCreating" {
			t.Errorf("%s: %s, want Pending in ContainerCreating", p.Name, describe(got))
		}
	}
	watchNode(ctx, t, k.NodeName, isReady)

	// A PV for the waiting claim appears: it binds, and the pod starts on it.
	dir := filepath.Join(t.TempDir(), "late")
	pv := &v1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: unbound.Name},
		Spec: v1.PersistentVolumeSpec{StorageClassName: class,
			PersistentVolumeSource:        v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: dir, Type: ptr(v1.HostPathDirectoryOrCreate)}},
			Capacity:                      v1.ResourceList{v1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: v1.PersistentVolumeReclaimRetain}}
	if _, err := bed.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = bed.Client.CoreV1().PersistentVolumes().Delete(context.Background(), pv.Name, metav1.DeleteOptions{})
	})
	watchPod(ctx, t, w, "Running once its claim is bound", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	waitFile(ctx, t, filepath.Join(dir, "ok"), "ok")
}
