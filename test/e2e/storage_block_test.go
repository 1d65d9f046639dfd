package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// loopDevice attaches a fresh image file of size bytes to a loop device, detached when the
// test ends.
func loopDevice(t *testing.T, size int64) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v %s", dev, err, out)
		}
	})
	return dev
}

// onDevice gives the pod's one container claim as the raw device /dev/xvda.
func onDevice(p *v1.Pod, claim string, ro bool) {
	p.Spec.Volumes = append(p.Spec.Volumes, claimVol("data", claim, ro))
	p.Spec.Containers[0].VolumeDevices = append(p.Spec.Containers[0].VolumeDevices, v1.VolumeDevice{Name: "data", DevicePath: "/dev/xvda"})
}

// readDevice reads n bytes at the start of a block device on the host.
func readDevice(t *testing.T, dev string, n int) string {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestStorageBlock: raw block volumes (volumeMode: Block, volumeDevices). First a local PV
// on a block device, as an admin makes one for a database that wants a raw disk. The device is bound onto upstream's
// global map, linked from the pod's folder and given to the container at its devicePath:
// the pod writes to it and the bytes are on the device; a read-only claim gets the device
// read-only; upstream's two MapPodDevice events; deleting the pod unmaps it and leaves
// the device (and its data) alone. A hostPath PV in block mode has no block plugin. Then
// the same through the bed's CSI driver (blockCSI).
func TestStorageBlock(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	k := startKubelet(t, "blk")
	watchNode(ctx, t, k.NodeName, isReady)
	suffix := fmt.Sprint(time.Now().UnixNano() % 1000000)
	dev := loopDevice(t, 4<<20)
	claim := staticClaimMode(ctx, t, "blk-"+suffix, v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: dev}}, hostnameIn(k.NodeName), v1.PersistentVolumeBlock)

	pod := newPod(k.NodeName, "sh", "-c", `printf 'written-by-pod' | dd of=/dev/xvda conv=notrunc 2>/dev/null && sync && echo done > /tmp/ok; sleep 3600`)
	onDevice(pod, claim.Name, false)
	p := createPod(ctx, t, pod)
	watchPod(ctx, t, p, "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	watchUntilPoll(ctx, t, "the pod's bytes on "+dev, func() (bool, string) {
		got := readDevice(t, dev, 14)
		return got == "written-by-pod", fmt.Sprintf("%q", got)
	})
	global := filepath.Join(k.RootDir, "plugins", "kubernetes.io~local-volume", "volumeDevices", claim.Name)
	link := filepath.Join(k.RootDir, "pods", string(p.UID), "volumeDevices", "kubernetes.io~local-volume", claim.Name)
	waitPodEvent(ctx, t, p, fmt.Sprintf(` Normal SuccessfulMountVolume MapVolume.MapPodDevice succeeded for volume %q globalMapPath %q`, claim.Name, global))
	waitPodEvent(ctx, t, p, fmt.Sprintf(` Normal SuccessfulMountVolume MapVolume.MapPodDevice succeeded for volume %q volumeMapPath %q`, claim.Name, filepath.Dir(link)))
	if target, err := os.Readlink(link); err != nil || target != dev {
		t.Errorf("%s -> %q (%v), want %s", link, target, err, dev)
	}
	if !isMountPoint(t, filepath.Join(global, string(p.UID))) {
		t.Errorf("the device is not bound on the global map %s", filepath.Join(global, string(p.UID)))
	}
	deletePodAndWaitPathGone(ctx, t, p, link, time.Minute, "the pod's device link")
	if _, err := os.Lstat(filepath.Join(global, string(p.UID))); !os.IsNotExist(err) {
		t.Errorf("the global map of the deleted pod is left: %v", err)
	}
	if got := readDevice(t, dev, 14); got != "written-by-pod" {
		t.Errorf("the device's data after the pod went: %q", got)
	}

	// Read-only: the container may read the device and not write it.
	ro := newPod(k.NodeName, "sh", "-c", `head -c 14 /dev/xvda; printf x | dd of=/dev/xvda conv=notrunc 2>/dev/null; echo " write rc=$?"; sleep 3600`)
	onDevice(ro, claim.Name, true)
	r := createPod(ctx, t, ro)
	watchPod(ctx, t, r, "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	watchUntilPoll(ctx, t, "the read-only pod's log", func() (bool, string) {
		out, err := podLogs(ctx, r, &v1.PodLogOptions{})
		return err == nil && strings.HasPrefix(out, "written-by-pod write rc=") && !strings.Contains(out, "rc=0"), fmt.Sprintf("%q %v", out, err)
	})
	if got := readDevice(t, dev, 14); got != "written-by-pod" {
		t.Errorf("a read-only claim's pod changed the device: %q", got)
	}
	deletePodAndWaitPathGone(ctx, t, r, filepath.Join(global, string(r.UID)), time.Minute, "the read-only pod's global map")

	// A hostPath PV cannot be a raw block volume.
	hp := staticClaimMode(ctx, t, "blk-hp-"+suffix, v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: dev}}, nil, v1.PersistentVolumeBlock)
	hpod := newPod(k.NodeName, "sleep", "3600")
	onDevice(hpod, hp.Name, false)
	h := createPod(ctx, t, hpod)
	if upstream {
		// Upstream finds no block mapper and only logs it; the pod waits.
		watchPod(ctx, t, h, "Pending", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodPending })
	} else {
		waitPodEvent(ctx, t, h, ` Warning FailedMapVolume MapVolume.FindMapperPluginBySpec failed for volume "`+hp.Name+`" : no block volume plugin for persistent volume type hostPath`)
	}
	blockCSI(ctx, t, k, suffix)
}

// blockCSI: a raw block PV of the bed's CSI driver. The node agent stages it at upstream's
// volumeDevices/staging path and has it published onto a file of the pod's (block
// capability both times), binds that onto the global map and links it into the pod; the
// pod's bytes land on the driver's device and a second pod reads them back; each pod's
// deletion unpublishes, the last one unstages, and no mount is left.
func blockCSI(ctx context.Context, t *testing.T, k *testbed.Kubelet, suffix string) {
	d := startCSI(ctx, t, k)
	handle := "blk-" + suffix
	claim := staticClaimMode(ctx, t, "csi-blk-"+suffix, v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{Driver: testbed.CSIDriverName, VolumeHandle: handle}},
		&v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{
			Key: testbed.CSITopologyKey, Operator: v1.NodeSelectorOpIn, Values: []string{k.NodeName}}}}}}}, v1.PersistentVolumeBlock)
	pv := claim.Name // staticClaimMode names the PV as its claim
	dir := filepath.Join(k.RootDir, "plugins", "kubernetes.io", "csi", "volumeDevices")

	pod := newPod(k.NodeName, "sh", "-c", `printf 'csi-block-data' | dd of=/dev/xvda conv=notrunc 2>/dev/null && sync; sleep 3600`)
	onDevice(pod, claim.Name, false)
	p := createPod(ctx, t, pod)
	watchPod(ctx, t, p, "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	publish := filepath.Join(dir, "publish", pv, string(p.UID))
	link := filepath.Join(k.RootDir, "pods", string(p.UID), "volumeDevices", "kubernetes.io~csi", pv)
	if target, err := os.Readlink(link); err != nil || target != publish {
		t.Errorf("%s -> %q (%v), want the publish path %s", link, target, err, publish)
	}
	for _, m := range []string{publish, filepath.Join(dir, pv, "dev", string(p.UID))} {
		if !isMountPoint(t, m) {
			t.Errorf("%s is not a mount point; mounts under the root dir: %q", m, mountsUnder(t, k.RootDir))
		}
	}
	for _, c := range callsOf(d, handle) {
		if m := strings.Fields(c)[0]; (m == "NodeStageVolume" || m == "NodePublishVolume") && !strings.Contains(c, `"block":{}`) {
			t.Errorf("%s without the block capability: %s", m, c)
		}
	}
	watchNode(ctx, t, k.NodeName, func(n *v1.Node) bool {
		return slices.Contains(n.Status.VolumesInUse, v1.UniqueVolumeName("kubernetes.io/csi/"+testbed.CSIDriverName+"^"+handle))
	})
	deletePodAndWaitPathGone(ctx, t, p, link, time.Minute, "the pod's device link")

	reader := newPod(k.NodeName, "sh", "-c", `head -c 14 /dev/xvda; echo; sleep 3600`)
	onDevice(reader, claim.Name, true)
	r := createPod(ctx, t, reader)
	watchUntilPoll(ctx, t, "the second pod reads the first one's bytes", func() (bool, string) {
		out, err := podLogs(ctx, r, &v1.PodLogOptions{})
		return err == nil && strings.TrimSpace(out) == "csi-block-data", fmt.Sprintf("%q %v", out, err)
	})
	deletePodAndWaitPathGone(ctx, t, r, filepath.Join(dir, pv), time.Minute, "the volume's folders (unstaged)")
	if left := mountsUnder(t, k.RootDir); len(left) > 0 {
		t.Errorf("mounts left under the node agent's root dir: %q", left)
	}
	got := methods(callsOf(d, handle))
	t.Logf("node calls for %s: %s", handle, strings.Join(got, " "))
	for _, want := range []string{"NodeStageVolume", "NodePublishVolume", "NodeUnpublishVolume", "NodeUnstageVolume"} {
		if !slices.Contains(got, want) {
			t.Errorf("no %s for %s; calls: %q", want, handle, got)
		}
	}
}
