package csi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
	"k8s.io/utils/ptr"
)

const testDriver = "test.csi.example.com"

// fakePlugin is a CSI driver's node service and its registration service, each on its
// own socket, recording what it was asked.
type fakePlugin struct {
	csipb.UnimplementedNodeServer
	registerapi.UnimplementedRegistrationServer

	versions []string
	endpoint string
	stage    bool
	hang     chan struct{} // non-nil: NodeStageVolume answers only once it is closed

	mu     sync.Mutex
	calls  []string
	status chan *registerapi.RegistrationStatus
	stageR *csipb.NodeStageVolumeRequest
	pubR   *csipb.NodePublishVolumeRequest
}

func (f *fakePlugin) record(c string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}

func (f *fakePlugin) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{Type: registerapi.CSIPlugin, Name: testDriver, Endpoint: f.endpoint, SupportedVersions: f.versions}, nil
}

func (f *fakePlugin) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	f.status <- s
	return &registerapi.RegistrationStatusResponse{}, nil
}

func (f *fakePlugin) NodeGetInfo(context.Context, *csipb.NodeGetInfoRequest) (*csipb.NodeGetInfoResponse, error) {
	f.record("NodeGetInfo")
	return &csipb.NodeGetInfoResponse{NodeId: "id-n1", MaxVolumesPerNode: 7,
		AccessibleTopology: &csipb.Topology{Segments: map[string]string{"topology.example.com/zone": "z1"}}}, nil
}

func (f *fakePlugin) NodeGetCapabilities(context.Context, *csipb.NodeGetCapabilitiesRequest) (*csipb.NodeGetCapabilitiesResponse, error) {
	var caps []*csipb.NodeServiceCapability
	if f.stage {
		for _, c := range []csipb.NodeServiceCapability_RPC_Type{csipb.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME, csipb.NodeServiceCapability_RPC_EXPAND_VOLUME} {
			caps = append(caps, &csipb.NodeServiceCapability{Type: &csipb.NodeServiceCapability_Rpc{
				Rpc: &csipb.NodeServiceCapability_RPC{Type: c}}})
		}
	}
	return &csipb.NodeGetCapabilitiesResponse{Capabilities: caps}, nil
}

func (f *fakePlugin) NodeStageVolume(ctx context.Context, r *csipb.NodeStageVolumeRequest) (*csipb.NodeStageVolumeResponse, error) {
	f.record("NodeStageVolume")
	if f.hang != nil {
		<-f.hang // as a driver that never answers: the caller gives up first
		return nil, ctx.Err()
	}
	f.mu.Lock()
	f.stageR = r
	f.mu.Unlock()
	return &csipb.NodeStageVolumeResponse{}, nil
}

func (f *fakePlugin) NodePublishVolume(_ context.Context, r *csipb.NodePublishVolumeRequest) (*csipb.NodePublishVolumeResponse, error) {
	f.record("NodePublishVolume")
	f.mu.Lock()
	f.pubR = r
	f.mu.Unlock()
	if r.VolumeCapability.GetBlock() != nil { // a block target is a file the driver makes
		return &csipb.NodePublishVolumeResponse{}, os.WriteFile(r.TargetPath, nil, 0o640)
	}
	return &csipb.NodePublishVolumeResponse{}, os.MkdirAll(r.TargetPath, 0o750)
}

func (f *fakePlugin) NodeUnpublishVolume(_ context.Context, r *csipb.NodeUnpublishVolumeRequest) (*csipb.NodeUnpublishVolumeResponse, error) {
	f.record("NodeUnpublishVolume " + r.VolumeId)
	return &csipb.NodeUnpublishVolumeResponse{}, os.RemoveAll(r.TargetPath)
}

func (f *fakePlugin) NodeUnstageVolume(_ context.Context, r *csipb.NodeUnstageVolumeRequest) (*csipb.NodeUnstageVolumeResponse, error) {
	f.record("NodeUnstageVolume " + r.VolumeId)
	return &csipb.NodeUnstageVolumeResponse{}, nil
}

func (f *fakePlugin) NodeExpandVolume(_ context.Context, r *csipb.NodeExpandVolumeRequest) (*csipb.NodeExpandVolumeResponse, error) {
	f.record(fmt.Sprintf("NodeExpandVolume %s %s %s %d", r.VolumeId, r.VolumePath, r.StagingTargetPath, r.CapacityRange.GetRequiredBytes()))
	return &csipb.NodeExpandVolumeResponse{CapacityBytes: r.CapacityRange.GetRequiredBytes()}, nil
}

func (f *fakePlugin) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// serve starts the plugin's CSI socket (in dir) and registration socket (in regDir).
func serve(t *testing.T, f *fakePlugin, dir, regDir string) (regSocket string) {
	t.Helper()
	f.endpoint = filepath.Join(dir, "csi.sock")
	f.status = make(chan *registerapi.RegistrationStatus, 4)
	for _, s := range []struct {
		path string
		reg  func(*grpc.Server)
	}{
		{f.endpoint, func(g *grpc.Server) { csipb.RegisterNodeServer(g, f) }},
		{filepath.Join(regDir, testDriver+"-reg.sock"), func(g *grpc.Server) { registerapi.RegisterRegistrationServer(g, f) }},
	} {
		l, err := net.Listen("unix", s.path)
		if err != nil {
			t.Fatal(err)
		}
		g := grpc.NewServer()
		s.reg(g)
		go func() { _ = g.Serve(l) }()
		t.Cleanup(g.Stop)
	}
	return filepath.Join(regDir, testDriver+"-reg.sock")
}

func newTestRegistry(t *testing.T) (*Registry, *fake.Clientset, context.Context) {
	t.Helper()
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "node-uid"}})
	// Sockets need short paths (108 bytes): not t.TempDir's.
	root, err := os.MkdirTemp("/tmp", "csi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	r := NewRegistry(Config{RootDir: root, NodeName: "n1", Client: client})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the registration folder", func() bool { _, err := os.Stat(r.Dir()); return err == nil })
	return r, client, ctx
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRegistration: a plugin's socket in plugins_registry registers its driver (CSINode
// entry, node ID annotation, topology label, the plugin told it is registered); removing
// the socket takes the driver off CSINode and the annotation.
func TestRegistration(t *testing.T) {
	r, client, ctx := newTestRegistry(t)
	f := &fakePlugin{versions: []string{"1.0.0"}}
	reg := serve(t, f, filepath.Dir(r.Dir()), r.Dir())
	select {
	case s := <-f.status:
		if !s.PluginRegistered {
			t.Fatalf("not registered: %s", s.Error)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the plugin was never told its registration status")
	}
	if _, err := r.Driver(testDriver); err != nil {
		t.Fatal(err)
	}
	cn, err := client.StorageV1().CSINodes().Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cn.OwnerReferences) != 1 || cn.OwnerReferences[0].UID != "node-uid" {
		t.Errorf("CSINode owners %+v, want the Node", cn.OwnerReferences)
	}
	if len(cn.Spec.Drivers) != 1 || cn.Spec.Drivers[0].NodeID != "id-n1" || strings.Join(cn.Spec.Drivers[0].TopologyKeys, ",") != "topology.example.com/zone" ||
		cn.Spec.Drivers[0].Allocatable == nil || *cn.Spec.Drivers[0].Allocatable.Count != 7 {
		t.Errorf("CSINode drivers %+v", cn.Spec.Drivers)
	}
	n, _ := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if n.Annotations[annotationNodeID] != `{"test.csi.example.com":"id-n1"}` || n.Labels["topology.example.com/zone"] != "z1" {
		t.Errorf("node annotations %v labels %v", n.Annotations, n.Labels)
	}

	if err := os.Remove(reg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "deregistration", func() bool { _, err := r.Driver(testDriver); return err != nil })
	waitFor(t, "CSINode without the driver", func() bool {
		cn, _ := client.StorageV1().CSINodes().Get(ctx, "n1", metav1.GetOptions{})
		return cn != nil && len(cn.Spec.Drivers) == 0
	})
	n, _ = client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if _, ok := n.Annotations[annotationNodeID]; ok {
		t.Errorf("node ID annotation left: %v", n.Annotations)
	}
}

// TestRegistrationRefused: a plugin speaking no CSI 1.x is told why it was refused.
func TestRegistrationRefused(t *testing.T) {
	r, _, _ := newTestRegistry(t)
	f := &fakePlugin{versions: []string{"2.0.0"}}
	serve(t, f, filepath.Dir(r.Dir()), r.Dir())
	select {
	case s := <-f.status:
		if s.PluginRegistered || !strings.Contains(s.Error, `None of the versions specified ["2.0.0"] are supported`) {
			t.Fatalf("status %+v", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the plugin was never told its registration status")
	}
	if _, err := r.Driver(testDriver); err == nil {
		t.Error("refused driver registered")
	}
}

// TestPublishAndUnpublish: an attached PV is staged at upstream's global path with the
// attachment's publish context, published at the pod's target with the pod's info, counted
// in volumesInUse; tearing the pod down unpublishes, and unstages the last user.
func TestPublishAndUnpublish(t *testing.T) {
	r, client, ctx := newTestRegistry(t)
	f := &fakePlugin{versions: []string{"1.0.0"}, stage: true}
	serve(t, f, filepath.Dir(r.Dir()), r.Dir())
	waitFor(t, "registration", func() bool { _, err := r.Driver(testDriver); return err == nil })
	if _, err := client.StorageV1().CSIDrivers().Create(ctx, &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: testDriver},
		Spec: storagev1.CSIDriverSpec{PodInfoOnMount: ptr.To(true)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "pod-uid"}, Spec: v1.PodSpec{ServiceAccountName: "sa"}}
	vol := Volume{Driver: testDriver, Handle: "vol-1", SpecName: "pv1", Attributes: map[string]string{"k": "v"},
		AccessModes: []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce}}
	podVols := filepath.Join(r.cfg.RootDir, "pods", "pod-uid", "volumes")
	target := TargetPath(podVols, "pv1")

	// Not attached yet: the caller waits.
	if _, err := NewVolumes(r).Publish(ctx, pod, vol, target); err != ErrNotAttached {
		t.Fatalf("before the attachment: %v, want ErrNotAttached", err)
	}
	va := &storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: AttachmentName("vol-1", testDriver, "n1")},
		Status: storagev1.VolumeAttachmentStatus{Attached: true, AttachmentMetadata: map[string]string{"dev": "/dev/x"}}}
	if _, err := client.StorageV1().VolumeAttachments().Create(ctx, va, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewVolumes(r).Publish(ctx, pod, vol, target); err != nil {
		t.Fatal(err)
	}
	// sha256("vol-1"), as upstream names the global mount.
	staging := filepath.Join(r.cfg.RootDir, "plugins/kubernetes.io/csi", testDriver,
		"d2e8363faaac7ae76def3b14091d8eb5755f6b92e9531627aeec833a8731cc49", "globalmount")
	if f.stageR.StagingTargetPath != staging || f.stageR.PublishContext["dev"] != "/dev/x" ||
		f.stageR.VolumeCapability.GetAccessMode().Mode != csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER {
		t.Errorf("stage request %+v, want staging %s and the publish context", f.stageR, staging)
	}
	if f.pubR.TargetPath != target || f.pubR.StagingTargetPath != staging || f.pubR.VolumeContext["k"] != "v" ||
		f.pubR.VolumeContext["csi.storage.k8s.io/pod.name"] != "p" || f.pubR.VolumeContext["csi.storage.k8s.io/serviceAccount.name"] != "sa" ||
		f.pubR.VolumeContext["csi.storage.k8s.io/ephemeral"] != "false" {
		t.Errorf("publish request %+v", f.pubR)
	}
	if got := NewVolumes(r).InUse(); len(got) != 1 || got[0] != "kubernetes.io/csi/"+testDriver+"^vol-1" {
		t.Errorf("in use %v", got)
	}
	data, err := loadVolData(filepath.Dir(target))
	if err != nil || data["specVolID"] != "pv1" || data["volumeHandle"] != "vol-1" || data["driverName"] != testDriver || data["nodeName"] != "n1" {
		t.Errorf("vol_data.json %v %v", data, err)
	}

	// Online expansion: the published volume, at its paths, to the new size.
	if err := NewVolumes(r).Expand(ctx, vol, target, 2<<30); err != nil {
		t.Fatal(err)
	}
	if c := f.Calls(); c[len(c)-1] != fmt.Sprintf("NodeExpandVolume vol-1 %s %s %d", target, staging, 2<<30) {
		t.Errorf("expand call %q", c[len(c)-1])
	}

	// A second pod on the same volume: its tear-down leaves the volume staged.
	target2 := TargetPath(filepath.Join(r.cfg.RootDir, "pods", "pod-2", "volumes"), "pv1")
	if _, err := NewVolumes(r).Publish(ctx, pod, vol, target2); err != nil {
		t.Fatal(err)
	}
	if err := NewVolumes(r).UnpublishPod(ctx, filepath.Join(r.cfg.RootDir, "pods", "pod-2", "volumes")); err != nil {
		t.Fatal(err)
	}
	if err := NewVolumes(r).UnpublishPod(ctx, podVols); err != nil {
		t.Fatal(err)
	}
	want := "NodeGetInfo NodeStageVolume NodePublishVolume NodeExpandVolume vol-1 " + target + " " + staging + " 2147483648 NodeStageVolume NodePublishVolume NodeUnpublishVolume vol-1 NodeUnpublishVolume vol-1 NodeUnstageVolume vol-1"
	if got := strings.Join(f.Calls(), " "); got != want {
		t.Errorf("calls\n%s\nwant\n%s", got, want)
	}
	for _, p := range []string{filepath.Dir(target), filepath.Dir(staging)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", p, err)
		}
	}
	if got := NewVolumes(r).InUse(); len(got) != 0 {
		t.Errorf("in use after tear-down: %v", got)
	}
}

// TestPublishBlock: a raw block volume is staged and published at upstream's
// volumeDevices paths with a block capability, counts as in use, and is unstaged when the
// last pod goes.
func TestPublishBlock(t *testing.T) {
	r, _, ctx := newTestRegistry(t)
	f := &fakePlugin{versions: []string{"1.0.0"}, stage: true}
	serve(t, f, filepath.Dir(r.Dir()), r.Dir())
	waitFor(t, "registration", func() bool { _, err := r.Driver(testDriver); return err == nil })
	vs := NewVolumes(r)
	vol := Volume{Driver: testDriver, Handle: "vol-b", SpecName: "pv-b", Block: true, ReadOnly: true}
	pod := func(uid string) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: uid, Namespace: "ns", UID: types.UID(uid)}}
	}
	// No CSIDriver object: attachment required, as upstream defaults it.
	if _, err := vs.PublishBlock(ctx, pod("p1"), vol); err != ErrNotAttached {
		t.Fatalf("before the attachment: %v, want ErrNotAttached", err)
	}
	r.cfg.Client.(*fake.Clientset).Tracker().Add(&storagev1.VolumeAttachment{ObjectMeta: metav1.ObjectMeta{Name: AttachmentName("vol-b", testDriver, "n1")},
		Status: storagev1.VolumeAttachmentStatus{Attached: true}})
	dir := filepath.Join(r.cfg.RootDir, "plugins/kubernetes.io/csi/volumeDevices")
	for _, uid := range []string{"p1", "p2"} {
		dev, err := vs.PublishBlock(ctx, pod(uid), vol)
		if want := filepath.Join(dir, "publish", "pv-b", uid); err != nil || dev != want {
			t.Fatalf("published at %q (%v), want %s", dev, err, want)
		}
	}
	if f.stageR.StagingTargetPath != filepath.Join(dir, "staging", "pv-b") || f.stageR.VolumeCapability.GetBlock() == nil {
		t.Errorf("stage request %+v", f.stageR)
	}
	if f.pubR.StagingTargetPath != f.stageR.StagingTargetPath || f.pubR.VolumeCapability.GetBlock() == nil || !f.pubR.Readonly {
		t.Errorf("publish request %+v", f.pubR)
	}
	if got := vs.InUse(); len(got) != 1 || got[0] != "kubernetes.io/csi/"+testDriver+"^vol-b" {
		t.Errorf("in use %v", got)
	}
	if vs.BlockGlobalMapPath("pv-b") != filepath.Join(dir, "pv-b", "dev") {
		t.Errorf("global map path %s", vs.BlockGlobalMapPath("pv-b"))
	}
	for _, uid := range []string{"p2", "p1"} {
		if err := vs.UnpublishBlock(ctx, "pv-b", types.UID(uid)); err != nil {
			t.Fatal(err)
		}
	}
	want := "NodeGetInfo NodeStageVolume NodePublishVolume NodeStageVolume NodePublishVolume NodeUnpublishVolume vol-b NodeUnpublishVolume vol-b NodeUnstageVolume vol-b"
	if got := strings.Join(f.Calls(), " "); got != want {
		t.Errorf("calls\n%s\nwant\n%s", got, want)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left under volumeDevices: %v", left)
	}
	if got := vs.InUse(); len(got) != 0 {
		t.Errorf("in use after tear-down: %v", got)
	}
}

// TestHangingDriver: a driver that never answers NodeStageVolume fails the volume after
// the call timeout with the gRPC deadline error, named as upstream's MountDevice step.
func TestHangingDriver(t *testing.T) {
	r, client, ctx := newTestRegistry(t)
	r.cfg.CallTimeout = 300 * time.Millisecond
	f := &fakePlugin{versions: []string{"1.0.0"}, stage: true, hang: make(chan struct{})}
	serve(t, f, filepath.Dir(r.Dir()), r.Dir())
	t.Cleanup(func() { close(f.hang) }) // before the server stops
	waitFor(t, "registration", func() bool { _, err := r.Driver(testDriver); return err == nil })
	if _, err := client.StorageV1().CSIDrivers().Create(ctx, &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: testDriver},
		Spec: storagev1.CSIDriverSpec{AttachRequired: ptr.To(false)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "pod-uid"}}
	start := time.Now()
	_, err := NewVolumes(r).Publish(ctx, pod, Volume{Driver: testDriver, Handle: "h", SpecName: "pv"}, TargetPath(t.TempDir(), "pv"))
	var step *StepError
	// gRPC's text after the code varies with who notices the deadline first.
	if !errors.As(err, &step) || step.Step != "MountDevice" || !strings.HasPrefix(err.Error(), "rpc error: code = DeadlineExceeded desc = ") {
		t.Fatalf("err = %v (%T), want MountDevice's deadline error", err, err)
	}
	if d := time.Since(start); d < r.cfg.CallTimeout {
		t.Errorf("gave up after %v, before the call timeout", d)
	}
}

// TestPublishErrors: upstream's texts for a driver that is not registered and one whose
// CSIDriver does not serve inline volumes.
func TestPublishErrors(t *testing.T) {
	r, client, ctx := newTestRegistry(t)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "pod-uid"}}
	_, err := NewVolumes(r).Publish(ctx, pod, Volume{Driver: "nope", Handle: "h", SpecName: "pv"}, "/tmp/x/mount")
	if err == nil || err.Error() != "kubernetes.io/csi: attacher.MountDevice failed to create newCsiDriverClient: driver name nope not found in the list of registered CSI drivers" {
		t.Errorf("unregistered: %v", err)
	}
	if _, err := client.StorageV1().CSIDrivers().Create(ctx, &storagev1.CSIDriver{ObjectMeta: metav1.ObjectMeta{Name: "persistent-only"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = NewVolumes(r).Publish(ctx, pod, Volume{Driver: "persistent-only", Handle: "h", SpecName: "v", Ephemeral: true}, "/tmp/x/mount")
	if err == nil || !strings.Contains(err.Error(), `volume mode "Ephemeral" not supported by driver persistent-only`) {
		t.Errorf("inline on a persistent-only driver: %v", err)
	}
}

func TestFSGroupPolicy(t *testing.T) {
	rwo := []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce}
	file, none := storagev1.FileFSGroupPolicy, storagev1.NoneFSGroupPolicy
	for _, tc := range []struct {
		info *storagev1.CSIDriver
		vol  Volume
		want bool
	}{
		{nil, Volume{FSType: "ext4", AccessModes: rwo}, true},
		{nil, Volume{AccessModes: rwo}, false},
		{nil, Volume{FSType: "ext4", AccessModes: []v1.PersistentVolumeAccessMode{v1.ReadWriteMany}}, false},
		{nil, Volume{FSType: "ext4", Ephemeral: true}, true},
		{&storagev1.CSIDriver{Spec: storagev1.CSIDriverSpec{FSGroupPolicy: &file}}, Volume{}, true},
		{&storagev1.CSIDriver{Spec: storagev1.CSIDriverSpec{FSGroupPolicy: &file}}, Volume{ReadOnly: true}, false},
		{&storagev1.CSIDriver{Spec: storagev1.CSIDriverSpec{FSGroupPolicy: &none}}, Volume{FSType: "ext4", AccessModes: rwo}, false},
	} {
		if got := fsGroupApplies(tc.info, tc.vol); got != tc.want {
			t.Errorf("%+v %+v: %v, want %v", tc.info, tc.vol, got, tc.want)
		}
	}
}
