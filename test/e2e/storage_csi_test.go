package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// startCSI starts external-attacher (with the CSIDriver object) and the test bed's CSI
// driver for node agent k, stopped when the test ends (their calls logged if it failed),
// and waits for the node agent to register the driver: CSINode lists it with its node ID
// and topology key, and the node carries the topology label.
func startCSI(ctx context.Context, t *testing.T, k *testbed.Kubelet) *testbed.CSIDriver {
	t.Helper()
	a, err := bed.StartCSIAttacher(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d, err := bed.StartCSIDriver(k)
	if err != nil {
		a.Stop()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("csi-attacher log tail:\n%s", a.Tail(40))
			t.Logf("CSI driver log tail:\n%s", d.Tail(60))
		}
		d.Stop()
		a.Stop()
	})
	watchUntilPoll(ctx, t, "CSINode "+k.NodeName+" lists "+testbed.CSIDriverName, func() (bool, string) {
		cn, err := bed.Client.StorageV1().CSINodes().Get(ctx, k.NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		for _, dr := range cn.Spec.Drivers {
			if dr.Name == testbed.CSIDriverName {
				return dr.NodeID == k.NodeName && slices.Equal(dr.TopologyKeys, []string{testbed.CSITopologyKey}),
					fmt.Sprintf("%+v", dr)
			}
		}
		return false, fmt.Sprintf("%+v", cn.Spec.Drivers)
	})
	watchNode(ctx, t, k.NodeName, func(n *v1.Node) bool { return n.Labels[testbed.CSITopologyKey] == k.NodeName })
	var reg []string
	for _, l := range strings.Split(d.Tail(200), "\n") {
		if i := strings.Index(l, "registration: "); i >= 0 {
			reg = append(reg, l[i:])
		}
	}
	t.Logf("the driver's registration with %s:\n%s\ncalls so far: %s", k.NodeName, strings.Join(reg, "\n"), strings.Join(trimmed(d.Calls()), "\n"))
	return d
}

// watchUntilPoll polls cond every 300 ms until it holds; the last state it describes is
// in the failure.
func watchUntilPoll(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	for {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not before the deadline; last: %s", what, last)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// csiClaim makes a static PV of driver with handle, affine to node by the driver's
// topology key, and a claim bound to it; both go when the test ends.
func csiClaim(ctx context.Context, t *testing.T, name, driver, handle, node string) *v1.PersistentVolumeClaim {
	t.Helper()
	return staticClaim(ctx, t, name, v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{
		Driver: driver, VolumeHandle: handle, VolumeAttributes: map[string]string{"e2e": "static"}}},
		&v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{
			Key: testbed.CSITopologyKey, Operator: v1.NodeSelectorOpIn, Values: []string{node}}}}}}})
}

// csiStagingPath is upstream's global mount of a volume of the bed's driver on node k.
func csiStagingPath(k *testbed.Kubelet, handle string) string {
	sum := sha256.Sum256([]byte(handle))
	return filepath.Join(k.RootDir, "plugins", "kubernetes.io", "csi", testbed.CSIDriverName, hex.EncodeToString(sum[:]), "globalmount")
}

// csiTargetPath is where node k publishes pod p's CSI volume name (the PV's name, or the
// pod's volume name for an inline one).
func csiTargetPath(k *testbed.Kubelet, p *v1.Pod, name string) string {
	return filepath.Join(k.RootDir, "pods", string(p.UID), "volumes", "kubernetes.io~csi", name, "mount")
}

func readMountinfo(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mountsUnder are the mount points under dir.
func mountsUnder(t *testing.T, dir string) []string {
	var out []string
	for _, l := range strings.Split(readMountinfo(t), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

func isMountPoint(t *testing.T, p string) bool {
	return slices.Contains(mountsUnder(t, filepath.Dir(p)), p)
}

// volumeAttachment is the VolumeAttachment of pv to node, nil if there is none.
func volumeAttachment(ctx context.Context, t *testing.T, pv, node string) *storagev1.VolumeAttachment {
	t.Helper()
	vas, err := bed.Client.StorageV1().VolumeAttachments().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range vas.Items {
		va := &vas.Items[i]
		if va.Spec.NodeName == node && va.Spec.Source.PersistentVolumeName != nil && *va.Spec.Source.PersistentVolumeName == pv {
			return va
		}
	}
	return nil
}

// callsOf are the driver's calls for one volume handle (and the volume-less ones when
// all is set), the "csi: " prefix dropped.
func callsOf(d *testbed.CSIDriver, handle string) []string {
	var out []string
	for _, c := range d.Calls() {
		if strings.Contains(c, " volume_id="+handle+" ") {
			out = append(out, strings.TrimPrefix(c, "csi: "))
		}
	}
	return out
}

func methods(calls []string) []string {
	var out []string
	for _, c := range calls {
		out = append(out, strings.Fields(c)[0])
	}
	return out
}

// csiPodEvents logs and returns the pod's events as "<type> <reason> <message>".
func csiPodEvents(ctx context.Context, t *testing.T, p *v1.Pod) []string {
	t.Helper()
	evs, err := bed.Client.CoreV1().Events(p.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", string(p.UID)).String()})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs.Items {
		out = append(out, fmt.Sprintf("%s %s %s (source %s, count %d)", e.Type, e.Reason, e.Message, e.Source.Component, e.Count))
	}
	return out
}

// TestStorageCSIPersistent: a pod on a claim bound to a static PV of the test bed's CSI
// driver. The node agent registers the driver (CSINode, topology label), the volume is
// attached (VolumeAttachment), staged at upstream's global mount path and published into
// the pod's folder; the pod's writes land in the driver's data folder; the claim's stats
// are in /stats/summary and /metrics; deleting the pod unpublishes and unstages it and
// leaves no mount, and the volume is detached. Then an inline ephemeral CSI volume: its
// data lives while the pod does.
func TestStorageCSIPersistent(t *testing.T) {
	ctx := ctxFor(t, 6*time.Minute)
	k := startKubelet(t, "csi-a")
	watchNode(ctx, t, k.NodeName, isReady)
	d := startCSI(ctx, t, k)
	suffix := fmt.Sprint(time.Now().UnixNano() % 1000000)
	handle := "vol-" + suffix
	claim := csiClaim(ctx, t, "csi-"+suffix, testbed.CSIDriverName, handle, k.NodeName)
	pvName := claim.Name // staticClaim names the PV as its claim

	pod := newPod(k.NodeName, "sh", "-c", `echo "$POD" > /data/id; dd if=/dev/zero of=/data/blob bs=1048576 count=4 2>/dev/null; sleep 3600`)
	pod.Spec.Containers[0].Env = []v1.EnvVar{{Name: "POD", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
	onClaim(pod, claim.Name)
	p := createPod(ctx, t, pod)
	p = watchPod(ctx, t, p, "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })

	va := volumeAttachment(ctx, t, pvName, k.NodeName)
	if va == nil || !va.Status.Attached || va.Spec.Attacher != testbed.CSIDriverName {
		t.Fatalf("VolumeAttachment of %s to %s: %+v", pvName, k.NodeName, va)
	}
	t.Logf("VolumeAttachment %s: attached %v, metadata %v", va.Name, va.Status.Attached, va.Status.AttachmentMetadata)
	if va.Status.AttachmentMetadata["attachedBy"] != k.NodeName {
		t.Errorf("attachment metadata %v, want attachedBy=%s", va.Status.AttachmentMetadata, k.NodeName)
	}
	waitFile(ctx, t, filepath.Join(d.VolumeDir(handle), "id"), p.Name)

	staging, target := csiStagingPath(k, handle), csiTargetPath(k, p, pvName)
	for _, m := range []string{staging, target} {
		if !isMountPoint(t, m) {
			t.Errorf("%s is not a mount point; mounts under the root dir: %q", m, mountsUnder(t, k.RootDir))
		}
	}

	checkCSIStats(ctx, t, k, p, claim.Name)

	deletePodAndWaitPathGone(ctx, t, p, target, time.Minute, "CSI publish path")
	watchUntilPoll(ctx, t, "staging path unmounted", func() (bool, string) {
		return !isMountPoint(t, staging), strings.Join(methods(callsOf(d, handle)), " ")
	})
	if left := mountsUnder(t, k.RootDir); len(left) > 0 {
		t.Errorf("mounts left under the node agent's root dir: %q", left)
	}
	waitFile(ctx, t, filepath.Join(d.VolumeDir(handle), "id"), p.Name) // the data stays
	watchUntilPoll(ctx, t, "VolumeAttachment deleted", func() (bool, string) {
		va := volumeAttachment(ctx, t, pvName, k.NodeName)
		return va == nil, fmt.Sprintf("%+v", va)
	})
	calls := callsOf(d, handle)
	t.Logf("node calls for %s, in order:\n%s", handle, strings.Join(calls, "\n"))
	t.Logf("controller calls for %s:\n%s", handle, strings.Join(callsOfController(t, handle), "\n"))
	t.Logf("all node driver calls (method only): %s", strings.Join(methods(trimmed(d.Calls())), " "))
	got := methods(calls)
	for _, want := range []string{"NodeStageVolume", "NodePublishVolume", "NodeUnpublishVolume", "NodeUnstageVolume"} {
		if !slices.Contains(got, want) {
			t.Errorf("no %s for %s; calls: %q", want, handle, got)
		}
	}

	// An inline ephemeral volume.
	eph := newPod(k.NodeName, "sh", "-c", `echo "$POD" > /eph/id; sleep 3600`)
	eph.Spec.Containers[0].Env = pod.Spec.Containers[0].Env
	eph.Spec.Volumes = []v1.Volume{{Name: "scratch", VolumeSource: v1.VolumeSource{CSI: &v1.CSIVolumeSource{
		Driver: testbed.CSIDriverName, VolumeAttributes: map[string]string{"e2e": "inline"}}}}}
	eph.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "scratch", MountPath: "/eph"}}
	e := createPod(ctx, t, eph)
	e = watchPod(ctx, t, e, "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	ephTarget := csiTargetPath(k, e, "scratch")
	if !isMountPoint(t, ephTarget) {
		t.Errorf("%s is not a mount point; mounts: %q", ephTarget, mountsUnder(t, k.RootDir))
	}
	var ephHandle string
	for _, c := range trimmed(d.Calls()) {
		if strings.HasPrefix(c, "NodePublishVolume ") && strings.Contains(c, " target_path="+ephTarget+" ") {
			ephHandle = strings.TrimPrefix(strings.Fields(c)[1], "volume_id=")
		}
	}
	if ephHandle == "" {
		t.Fatalf("no NodePublishVolume to %s", ephTarget)
	}
	waitFile(ctx, t, filepath.Join(d.VolumeDir(ephHandle), "id"), e.Name)
	deletePodAndWaitPathGone(ctx, t, e, d.VolumeDir(ephHandle), time.Minute, "ephemeral volume data")
	if left := mountsUnder(t, k.RootDir); len(left) > 0 {
		t.Errorf("mounts left under the node agent's root dir: %q", left)
	}
	t.Logf("calls for the inline volume %s:\n%s", ephHandle, strings.Join(callsOf(d, ephHandle), "\n"))
	if va := volumeAttachment(ctx, t, ephHandle, k.NodeName); va != nil {
		t.Errorf("inline volume attached: %+v", va)
	}
}

func trimmed(calls []string) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = strings.TrimPrefix(c, "csi: ")
	}
	return out
}

// callsOfController: the controller instance's calls for handle (from its log file).
func callsOfController(t *testing.T, handle string) []string {
	b, err := os.ReadFile(filepath.Join(bed.Dir, "logs", "csi-controller.log"))
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if i := strings.Index(l, "csi: "); i >= 0 && strings.Contains(l, " volume_id="+handle+" ") {
			out = append(out, l[i+5:])
		}
	}
	return out
}

// checkCSIStats polls the node agent's /stats/summary for the claim's volume stats (from
// NodeGetVolumeStats) and /metrics for kubelet_volume_stats_* of the claim.
func checkCSIStats(ctx context.Context, t *testing.T, k *testbed.Kubelet, p *v1.Pod, claim string) {
	t.Helper()
	crt, key, err := bed.PKI.Issue("e2e-csi-stats", "e2e-csi-stats", []string{"system:masters"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	watchUntilPoll(ctx, t, "/stats/summary has the claim's volume", func() (bool, string) {
		code, body := kubeletGet(ctx, t, k, "/stats/summary", crt, key, "")
		if code != 200 {
			return false, fmt.Sprintf("%d %s", code, body)
		}
		var s statsapi.Summary
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			return false, err.Error()
		}
		ps := findPod(&s, p.Name)
		if ps == nil {
			return false, "pod not in the summary"
		}
		for _, v := range ps.VolumeStats {
			if v.Name == "data" {
				b, _ := json.Marshal(v)
				ok := v.PVCRef != nil && v.PVCRef.Name == claim && val(v.CapacityBytes) > 0 && val(v.AvailableBytes) > 0 &&
					val(v.UsedBytes) > 0 && val(v.Inodes) > 0 && v.InodesFree != nil && v.InodesUsed != nil
				if ok {
					t.Logf("summary volume: %s", b)
				}
				return ok, string(b)
			}
		}
		return false, fmt.Sprintf("volumes: %+v", ps.VolumeStats)
	})
	watchUntilPoll(ctx, t, "/metrics has kubelet_volume_stats_* of the claim", func() (bool, string) {
		code, body := kubeletGet(ctx, t, k, "/metrics", crt, key, "")
		if code != 200 {
			return false, fmt.Sprintf("%d", code)
		}
		var lines []string
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "kubelet_volume_stats_") && strings.Contains(l, `persistentvolumeclaim="`+claim+`"`) {
				lines = append(lines, l)
			}
		}
		for _, m := range []string{"capacity_bytes", "available_bytes", "used_bytes", "inodes", "inodes_free", "inodes_used"} {
			if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "kubelet_volume_stats_"+m+"{") }) {
				return false, strings.Join(lines, "\n")
			}
		}
		t.Logf("/metrics volume series:\n%s", strings.Join(lines, "\n"))
		return true, ""
	})
}

// TestStorageCSIBadInput: a volume whose NodePublishVolume fails (the driver's
// fail-publish-* handle) and a PV of a driver that is not registered on the node. The pods
// wait in ContainerCreating with FailedMount events, and the node stays Ready.
func TestStorageCSIBadInput(t *testing.T) {
	ctx := ctxFor(t, 6*time.Minute)
	k := startKubelet(t, "csi-b")
	watchNode(ctx, t, k.NodeName, isReady)
	d := startCSI(ctx, t, k)
	suffix := fmt.Sprint(time.Now().UnixNano() % 1000000)

	// A driver that hangs: NodeStageVolume of this volume never answers (upstream gives
	// up after its 2-minute timeout; the unit tests check that error's wording). Everything
	// below happens while that call is in flight.
	hangHandle := "hang-stage-" + suffix
	hanging := csiClaim(ctx, t, "csi-hang-"+suffix, testbed.CSIDriverName, hangHandle, k.NodeName)
	hp := newPod(k.NodeName, "sleep", "3600")
	onClaim(hp, hanging.Name)
	h := createPod(ctx, t, hp)
	hangLine := "csi-hang: NodeStageVolume volume_id=" + hangHandle + " "
	watchUntilPoll(ctx, t, "NodeStageVolume of "+hangHandle+" in flight", func() (bool, string) {
		return strings.Contains(d.Tail(5000), hangLine), strings.Join(callsOf(d, hangHandle), "; ")
	})

	failing := csiClaim(ctx, t, "csi-fail-"+suffix, testbed.CSIDriverName, "fail-publish-x", k.NodeName)
	fp := newPod(k.NodeName, "sleep", "3600")
	onClaim(fp, failing.Name)
	f := createPod(ctx, t, fp)
	waitPodEvent(ctx, t, f, ` Warning FailedMount MountVolume.SetUp failed for volume "`+failing.Name+`" : rpc error: code = Internal desc = injected publish failure`)

	// A driver the node has never registered. Its CSIDriver object says no attach is
	// needed, so the node agent gets as far as mounting.
	other := "unregistered.e2e.minikubelet.io"
	cd := &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: other}, Spec: storagev1.CSIDriverSpec{AttachRequired: new(false)}}
	if _, err := bed.Client.StorageV1().CSIDrivers().Create(ctx, cd, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = bed.Client.StorageV1().CSIDrivers().Delete(context.Background(), other, metav1.DeleteOptions{})
	})
	unreg := staticClaim(ctx, t, "csi-unreg-"+suffix, v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{Driver: other, VolumeHandle: "u-" + suffix}}, nil)
	up := newPod(k.NodeName, "sleep", "3600")
	onClaim(up, unreg.Name)
	u := createPod(ctx, t, up)
	waitPodEvent(ctx, t, u, ` Warning FailedMount MountVolume.MountDevice failed for volume "`+unreg.Name+`" : kubernetes.io/csi: attacher.MountDevice failed to create newCsiDriverClient: driver name `+other+` not found in the list of registered CSI drivers`)

	// A pod without claims runs, and its configMap volume is refreshed while the hanging
	// pod's set-up waits.
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "csi-b-" + suffix, Namespace: "default"}, Data: map[string]string{"k": "v1"}}
	if _, err := bed.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = bed.Client.CoreV1().ConfigMaps("default").Delete(context.Background(), cm.Name, metav1.DeleteOptions{})
	})
	pp := newPod(k.NodeName, "sleep", "3600")
	pp.Spec.Volumes = []v1.Volume{{Name: "cfg", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: cm.Name}}}}}
	pp.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "cfg", MountPath: "/cfg"}}
	plain := createPod(ctx, t, pp)
	watchPod(ctx, t, plain, "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	cm.Data["k"] = "v2"
	if _, err := bed.Client.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFile(ctx, t, filepath.Join(k.RootDir, "pods", string(plain.UID), "volumes", "kubernetes.io~configmap", "cfg", "k"), "v2")
	if n, got := strings.Count(d.Tail(5000), hangLine), methods(callsOf(d, hangHandle)); n != 1 || len(got) != 0 {
		t.Errorf("%s: %d calls hanging and %v answered, want the one NodeStageVolume in flight and no retry", hangHandle, n, got)
	}
	for _, p := range []*v1.Pod{f, u, h} {
		got, err := bed.Client.CoreV1().Pods("default").Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cs := containerStatus(got, "main"); got.Status.Phase != v1.PodPending || cs == nil || cs.State.Waiting == nil || cs.State.Waiting.Reason != "ContainerCreating" {
			t.Errorf("%s: %s, want Pending in ContainerCreating", p.Name, describe(got))
		}
		t.Logf("events of %s:\n%s", p.Name, strings.Join(csiPodEvents(ctx, t, p), "\n"))
	}
	watchNode(ctx, t, k.NodeName, isReady)
	t.Logf("calls for fail-publish-x:\n%s", strings.Join(callsOf(d, "fail-publish-x"), "\n"))
	watchUntilPoll(ctx, t, "NodePublishVolume of fail-publish-x retried", func() (bool, string) {
		n := len(slices.DeleteFunc(methods(callsOf(d, "fail-publish-x")), func(m string) bool { return m != "NodePublishVolume" }))
		return n >= 2, fmt.Sprintf("called %d times", n)
	})
	for _, e := range csiPodEvents(ctx, t, h) {
		if strings.Contains(e, "MountVolume.") {
			t.Errorf("event of the pod whose stage hangs, before the driver's timeout: %s", e)
		}
	}
	// The driver going away ends the hung call at once (the pods' clean-up need not wait
	// out the timeout).
	d.Stop()
}
