package volume

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

func boundClaim(name, pvName string) *v1.PersistentVolumeClaim {
	return &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name)},
		Spec:       v1.PersistentVolumeClaimSpec{VolumeName: pvName},
		Status:     v1.PersistentVolumeClaimStatus{Phase: v1.ClaimBound},
	}
}

func boundPV(name string, claim *v1.PersistentVolumeClaim, src v1.PersistentVolumeSource) *v1.PersistentVolume {
	return &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PersistentVolumeSpec{PersistentVolumeSource: src,
			Capacity:   v1.ResourceList{v1.ResourceStorage: resource.MustParse("1Gi")},
			ClaimRef:   &v1.ObjectReference{Namespace: claim.Namespace, Name: claim.Name, UID: claim.UID},
			VolumeMode: ptr.To(v1.PersistentVolumeFilesystem)},
	}
}

func hostPathPV(name string, claim *v1.PersistentVolumeClaim, path string) *v1.PersistentVolume {
	return boundPV(name, claim, v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: path, Type: ptr.To(v1.HostPathDirectoryOrCreate)}})
}

// claimPod mounts every volume into its one container, as a pod using its claims does.
func claimPod(vols ...v1.Volume) *v1.Pod {
	pod := testPod(vols...)
	for _, v := range vols {
		pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts, v1.VolumeMount{Name: v.Name, MountPath: "/" + v.Name})
	}
	return pod
}

func claimVolume(name, claim string, ro bool) v1.Volume {
	return v1.Volume{Name: name, VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: ro}}}
}

func newClaimManager(t *testing.T, node *v1.Node, objs ...runtime.Object) *Manager {
	t.Helper()
	m, err := New(Config{Client: fake.NewClientset(objs...), RootDir: t.TempDir(),
		Node: func() (*v1.Node, error) { return node, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var thisNode = &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"kubernetes.io/hostname": "n1"}}}

func hostnameAffinity(host string) *v1.VolumeNodeAffinity {
	return &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
		MatchExpressions: []v1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: v1.NodeSelectorOpIn, Values: []string{host}}}}}}}
}

// TestClaimErrors: a claim the pod cannot use yet is reported with upstream's event text,
// and only after the pod's other volumes are ready.
func TestClaimErrors(t *testing.T) {
	dir := t.TempDir()
	bound := boundClaim("c", "pv1")
	unbound := &v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", UID: "uid-c"}, Status: v1.PersistentVolumeClaimStatus{Phase: v1.ClaimPending}}
	now := metav1.Now()
	deleting := boundClaim("c", "pv1")
	deleting.DeletionTimestamp = &now
	protected := deleting.DeepCopy()
	protected.Finalizers = []string{"kubernetes.io/pvc-protection"}
	noRef := hostPathPV("pv1", bound, dir)
	noRef.Spec.ClaimRef = nil
	otherRef := hostPathPV("pv1", bound, dir)
	otherRef.Spec.ClaimRef.UID = "someone-else"
	elsewhere := hostPathPV("pv1", bound, dir)
	elsewhere.Spec.NodeAffinity = hostnameAffinity("n2")
	block := hostPathPV("pv1", bound, dir)
	block.Spec.VolumeMode = ptr.To(v1.PersistentVolumeBlock)
	nfs := boundPV("pv1", bound, v1.PersistentVolumeSource{NFS: &v1.NFSVolumeSource{Server: "127.0.0.1", Path: "/x"}})
	missingLocal := boundPV("pv1", bound, v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: filepath.Join(dir, "nope")}})
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fileLocal := boundPV("pv1", bound, v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: file}})
	notADir := boundPV("pv1", bound, v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: file, Type: ptr.To(v1.HostPathDirectory)}})

	const prefix = "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[], failed to process volumes=[data]: "
	for _, tc := range []struct {
		name string
		objs []runtime.Object
		want string
	}{
		{"no claim", nil, prefix + `error processing PVC ns/c: failed to fetch PVC from API server: persistentvolumeclaims "c" not found`},
		{"unbound", []runtime.Object{unbound}, prefix + "error processing PVC ns/c: PVC is not bound"},
		{"deleting", []runtime.Object{deleting, hostPathPV("pv1", bound, dir)}, prefix + "error processing PVC ns/c: PVC is being deleted"},
		{"no PV", []runtime.Object{bound}, prefix + `error processing PVC ns/c: failed to fetch PV pv1 from API server: persistentvolumes "pv1" not found`},
		{"PV not bound back", []runtime.Object{bound, noRef}, prefix + "error processing PVC ns/c: found PV object pv1 but it has a nil pv.Spec.ClaimRef indicating it is not yet bound to the claim"},
		{"PV bound elsewhere", []runtime.Object{bound, otherRef}, prefix + "error processing PVC ns/c: found PV object pv1 but its pv.Spec.ClaimRef.UID someone-else does not point to claim.UID uid-c"},
		{"block mounted", []runtime.Object{bound, block}, prefix + "volume data has volumeMode Block, but is specified in volumeMounts"},
		{"node affinity", []runtime.Object{bound, elsewhere}, `MountVolume.NodeAffinity check failed for volume "pv1" : no matching NodeSelectorTerms`},
		{"unsupported PV", []runtime.Object{bound, nfs}, `MountVolume.SetUp failed for volume "pv1" : persistent volume type nfs is not supported by minikubelet`},
		{"local missing", []runtime.Object{bound, missingLocal}, `MountVolume.NewMounter initialization failed for volume "pv1" : path "` + filepath.Join(dir, "nope") + `" does not exist`},
		{"local file", []runtime.Object{bound, fileLocal}, `MountVolume.NewMounter initialization failed for volume "pv1" : only directory and block device are supported`},
		{"hostPath type", []runtime.Object{bound, notADir}, `MountVolume.SetUp failed for volume "pv1" : hostPath type check failed: ` + file + ` is not a directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newClaimManager(t, thisNode, tc.objs...)
			pod := claimPod(v1.Volume{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}, claimVolume("data", "c", false))
			_, err := m.SetUp(context.Background(), pod, nil)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v\nwant  %s", err, tc.want)
			}
			if tc.name == "unbound" {
				if _, err := os.Stat(m.volumeDir(pod, pluginEmptyDir, "scratch")); err != nil {
					t.Errorf("the other volume was not set up: %v", err)
				}
			}
		})
	}
	// A claim being deleted but still protected (a pod uses it) is still usable.
	m := newClaimManager(t, thisNode, protected, hostPathPV("pv1", bound, dir))
	if _, err := m.SetUp(context.Background(), claimPod(claimVolume("data", "c", false)), nil); err != nil {
		t.Errorf("protected claim: %v", err)
	}
}

// TestClaimErrorsListEveryFailure: several unusable claims are named together, as
// upstream joins the populator's errors.
func TestClaimErrorsListEveryFailure(t *testing.T) {
	m := newClaimManager(t, thisNode)
	_, err := m.SetUp(context.Background(), claimPod(claimVolume("b", "cb", false), claimVolume("a", "ca", false)), nil)
	want := "Unable to attach or mount volumes: unmounted volumes=[a b], unattached volumes=[], failed to process volumes=[a b]: " +
		`error processing PVC ns/cb: failed to fetch PVC from API server: persistentvolumeclaims "cb" not found; ` +
		`error processing PVC ns/ca: failed to fetch PVC from API server: persistentvolumeclaims "ca" not found`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
}

func TestHostPathClaim(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pvc-1")
	c := boundClaim("c", "pv1")
	pv := hostPathPV("pv1", c, dir)
	pv.Spec.NodeAffinity = hostnameAffinity("n1")
	m := newClaimManager(t, thisNode, c, pv)
	mounts, err := m.SetUp(context.Background(), claimPod(claimVolume("data", "c", false), claimVolume("ro", "c", true)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := mounts["data"]; got.HostPath != dir || got.ReadOnly {
		t.Errorf("data = %+v, want %s read-write", got, dir)
	}
	if got := mounts["ro"]; got.HostPath != dir || !got.ReadOnly {
		t.Errorf("ro = %+v, want %s read-only", got, dir)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Errorf("DirectoryOrCreate did not make %s: %v", dir, err)
	}
	// Tearing the pod down leaves the PV's data alone.
	if err := os.WriteFile(filepath.Join(dir, "id"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.TearDown(context.Background(), "uid-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "id")); err != nil {
		t.Errorf("tear-down touched the PV: %v", err)
	}
}

// TestGenericEphemeralClaim: the claim is the pod's own (<pod>-<volume>, owned by the
// pod); one the pod does not own is refused with upstream's message.
func TestGenericEphemeralClaim(t *testing.T) {
	dir := t.TempDir()
	vol := v1.Volume{Name: "scratch", VolumeSource: v1.VolumeSource{Ephemeral: &v1.EphemeralVolumeSource{}}}
	c := boundClaim("p-scratch", "pv1")
	pod := claimPod(vol)
	m := newClaimManager(t, thisNode, c, hostPathPV("pv1", c, dir))
	_, err := m.SetUp(context.Background(), pod, nil)
	want := "Unable to attach or mount volumes: unmounted volumes=[scratch], unattached volumes=[], failed to process volumes=[scratch]: PVC ns/p-scratch was not created for pod ns/p (pod is not owner)"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
	owned := c.DeepCopy()
	owned.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: "p", UID: pod.UID, Controller: ptr.To(true)}}
	m = newClaimManager(t, thisNode, owned, hostPathPV("pv1", owned, dir))
	mounts, err := m.SetUp(context.Background(), pod, nil)
	if err != nil || mounts["scratch"].HostPath != dir {
		t.Fatalf("mounts = %+v, err = %v", mounts, err)
	}
}

// TestLocalClaim: a local PV is bound into the pod's folder (read-only when the claim
// says so), takes the pod's fsGroup, and is unmounted on tear-down.
func TestLocalClaim(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("bind mounts need root")
	}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := boundClaim("c", "pv1")
	pv := boundPV("pv1", c, v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: src}})
	pv.Spec.NodeAffinity = hostnameAffinity("n1")
	m := newClaimManager(t, thisNode, c, pv)
	pod := claimPod(claimVolume("data", "c", false))
	pod.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: ptr.To(int64(4321))}
	mounts, err := m.SetUp(context.Background(), pod, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.TearDown(context.Background(), pod.UID) })
	dir := mounts["data"].HostPath
	if want := filepath.Join(m.PodDir(pod.UID), "volumes", pluginLocal, "pv1"); dir != want {
		t.Fatalf("path = %s, want %s", dir, want)
	}
	if got := read(t, filepath.Join(dir, "f")); got != "data" {
		t.Errorf("content through the bind = %q", got)
	}
	fi, err := os.Stat(filepath.Join(src, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Gid != 4321 || fi.Mode().Perm() != 0o660 {
		t.Errorf("file gid %d mode %v, want fsGroup 4321 and 0660", st.Gid, fi.Mode().Perm())
	}
	if err := m.TearDown(context.Background(), pod.UID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("bind left after tear-down: %v", err)
	}
	if got := read(t, filepath.Join(src, "f")); got != "data" {
		t.Errorf("tear-down touched the PV's data: %q", got)
	}

	// Read-only claim: the bind refuses writes.
	m = newClaimManager(t, thisNode, c, pv)
	pod = claimPod(claimVolume("data", "c", true))
	mounts, err = m.SetUp(context.Background(), pod, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.TearDown(context.Background(), pod.UID) })
	err = os.WriteFile(filepath.Join(mounts["data"].HostPath, "g"), nil, 0o600)
	if err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("write into a read-only claim: %v", err)
	}
}

// devicePod uses every volume as a raw block device in its one container.
func devicePod(vols ...v1.Volume) *v1.Pod {
	pod := testPod(vols...)
	for _, v := range vols {
		pod.Spec.Containers[0].VolumeDevices = append(pod.Spec.Containers[0].VolumeDevices, v1.VolumeDevice{Name: v.Name, DevicePath: "/dev/" + v.Name})
	}
	return pod
}

// TestBlockClaimErrors: a raw block claim that cannot be mapped gets upstream's MapVolume
// wording and event reason.
func TestBlockClaimErrors(t *testing.T) {
	dir := t.TempDir()
	c := boundClaim("c", "pv1")
	blockPV := func(src v1.PersistentVolumeSource) *v1.PersistentVolume {
		pv := boundPV("pv1", c, src)
		pv.Spec.VolumeMode = ptr.To(v1.PersistentVolumeBlock)
		return pv
	}
	hostPath := blockPV(v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: dir}})
	elsewhere := blockPV(v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: "/dev/null"}})
	elsewhere.Spec.NodeAffinity = hostnameAffinity("n2")
	notDevice := blockPV(v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: dir}})
	charDevice := blockPV(v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: "/dev/null"}})
	missing := blockPV(v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: filepath.Join(dir, "nope")}})
	fsPV := hostPathPV("pv1", c, dir)
	const global = "/plugins/kubernetes.io~local-volume/volumeDevices/pv1, podUID: uid-1, bindMount: true: "
	for _, tc := range []struct {
		name         string
		pv           *v1.PersistentVolume
		want, reason string
	}{
		{"filesystem PV as device", fsPV, "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[], failed to process volumes=[data]: volume data has volumeMode Filesystem, but is specified in volumeDevices", "FailedMount"},
		{"hostPath", hostPath, `MapVolume.FindMapperPluginBySpec failed for volume "pv1" : no block volume plugin for persistent volume type hostPath`, "FailedMapVolume"},
		{"node affinity", elsewhere, `MapVolume.NodeAffinity check failed for volume "pv1" : no matching NodeSelectorTerms`, "FailedMount"},
		{"folder", notDevice, `MapVolume.MapBlockVolume failed for volume "pv1" : blkUtil.MapDevice failed. devicePath: ` + dir + `, globalMapPath:{root}` + global + dir + ` is not a block device`, "FailedMapVolume"},
		{"character device", charDevice, `MapVolume.MapBlockVolume failed for volume "pv1" : blkUtil.MapDevice failed. devicePath: /dev/null, globalMapPath:{root}` + global + `/dev/null is not a block device`, "FailedMapVolume"},
		{"missing", missing, `MapVolume.MapBlockVolume failed for volume "pv1" : blkUtil.MapDevice failed. devicePath: ` + filepath.Join(dir, "nope") + `, globalMapPath:{root}` + global + `stat ` + filepath.Join(dir, "nope") + `: no such file or directory`, "FailedMapVolume"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newClaimManager(t, thisNode, c, tc.pv)
			_, err := m.SetUp(context.Background(), devicePod(claimVolume("data", "c", false)), nil)
			want := strings.ReplaceAll(tc.want, "{root}", m.cfg.RootDir)
			if err == nil || err.Error() != want {
				t.Fatalf("err = %v\nwant  %s", err, want)
			}
			if got := EventReason(err); got != tc.reason {
				t.Errorf("event reason %s, want %s", got, tc.reason)
			}
		})
	}
}

// TestLocalBlockClaim: a local PV on a block device is bound onto its global map and
// linked from the pod's folder, with upstream's two MapPodDevice events; tear-down undoes
// both and leaves the device alone.
func TestLocalBlockClaim(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loop devices and bind mounts need root")
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Skipf("no loop device here: %v %s", err, out)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", loop).Run() })

	c := boundClaim("c", "pv1")
	pv := boundPV("pv1", c, v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: loop}})
	pv.Spec.VolumeMode = ptr.To(v1.PersistentVolumeBlock)
	var events []string
	m, err := New(Config{Client: fake.NewClientset(c, pv), RootDir: t.TempDir(), Node: func() (*v1.Node, error) { return thisNode, nil },
		Event: func(_ runtime.Object, typ, reason, msg string) { events = append(events, typ+" "+reason+" "+msg) }})
	if err != nil {
		t.Fatal(err)
	}
	pod := devicePod(claimVolume("data", "c", true))
	mounts, err := m.SetUp(context.Background(), pod, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.TearDown(context.Background(), pod.UID) })
	mnt := mounts["data"]
	link := filepath.Join(m.PodDir(pod.UID), "volumeDevices", pluginLocal, "pv1")
	if !mnt.Device || !mnt.ReadOnly || mnt.HostPath != link {
		t.Fatalf("mount = %+v, want the read-only device at %s", mnt, link)
	}
	if target, err := os.Readlink(link); err != nil || target != loop {
		t.Errorf("link -> %q (%v), want %s", target, err, loop)
	}
	global := filepath.Join(m.cfg.RootDir, "plugins", pluginLocal, "volumeDevices", "pv1")
	if fi, err := os.Stat(filepath.Join(global, string(pod.UID))); err != nil || fi.Mode()&os.ModeDevice == 0 {
		t.Errorf("global map file: %v %v, want the device bound on it", fi, err)
	}
	want := []string{
		`Normal SuccessfulMountVolume MapVolume.MapPodDevice succeeded for volume "pv1" globalMapPath "` + global + `"`,
		`Normal SuccessfulMountVolume MapVolume.MapPodDevice succeeded for volume "pv1" volumeMapPath "` + filepath.Dir(link) + `"`,
	}
	if strings.Join(events, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}
	if err := m.TearDown(context.Background(), pod.UID); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{link, global} {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after tear-down: %v", p, err)
		}
	}
	if fi, err := os.Stat(loop); err != nil || fi.Mode()&os.ModeDevice == 0 {
		t.Errorf("the device itself is gone: %v", err)
	}
}
