package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
)

// TestBlockController: backing files, and capabilities checked against a volume's kind
// (neither root nor loop devices needed).
func TestBlockController(t *testing.T) {
	dir := t.TempDir()
	d, err := newDriver("n1", filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	create := func(name string, size int64, c *csi.VolumeCapability) (*csi.CreateVolumeResponse, error) {
		return d.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: name, CapacityRange: &csi.CapacityRange{RequiredBytes: size},
			VolumeCapabilities: []*csi.VolumeCapability{c}})
	}
	for range 2 { // idempotent
		v, err := create("b1", 8<<20, block)
		if err != nil || v.Volume.CapacityBytes != 8<<20 || v.Volume.VolumeContext[BlockSizeKey] != "8388608" {
			t.Fatalf("create block: %v %v", v, err)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(d.imagePath("b1"), &st); err != nil || st.Size != 8<<20 || st.Blocks*512 >= 8<<20 {
		t.Fatalf("backing file: size %d, %d blocks allocated, %v; want 8 MiB, sparse", st.Size, st.Blocks, err)
	}
	if _, err := os.Stat(d.dataDir("b1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a block volume got a data folder: %v", err)
	}
	if v, err := create("b0", 0, block); err != nil || v.Volume.CapacityBytes != DefaultBlockSize {
		t.Errorf("create block without a capacity: %v %v", v, err)
	}
	if _, err := create("b1", 0, rw); codeOf(err) != codes.AlreadyExists {
		t.Errorf("create a mount volume over a block one: %v", err)
	}
	if _, err := create("m1", 0, rw); err != nil {
		t.Fatal(err)
	}
	if _, err := create("m1", 0, block); codeOf(err) != codes.AlreadyExists {
		t.Errorf("create a block volume over a mount one: %v", err)
	}

	validate := func(id string, c *csi.VolumeCapability) bool {
		resp, err := d.ValidateVolumeCapabilities(ctx, &csi.ValidateVolumeCapabilitiesRequest{VolumeId: id, VolumeCapabilities: []*csi.VolumeCapability{c}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Confirmed != nil
	}
	noType := &csi.VolumeCapability{AccessMode: block.AccessMode}
	for _, c := range []struct {
		id   string
		cap  *csi.VolumeCapability
		want bool
	}{{"b1", block, true}, {"b1", rw, false}, {"m1", rw, true}, {"m1", block, false}, {"static", block, true}, {"static", rw, true}, {"static", noType, false}} {
		if got := validate(c.id, c.cap); got != c.want {
			t.Errorf("ValidateVolumeCapabilities(%s, block=%v): confirmed %v, want %v", c.id, isBlock(c.cap), got, c.want)
		}
	}

	for _, id := range []string{"b1", "m1"} {
		if _, err := d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{d.imagePath("b1"), d.dataDir("m1")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after DeleteVolume: %v", p, err)
		}
	}
}

// TestBlockNodeRefusals: what the node service refuses for block before any mount, and
// the faults.
func TestBlockNodeRefusals(t *testing.T) {
	d, err := newDriver("n1", filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := d.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "m1", VolumeCapabilities: []*csi.VolumeCapability{rw}}); err != nil {
		t.Fatal(err)
	}
	staging := t.TempDir()
	if _, err := d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "m1", StagingTargetPath: staging, VolumeCapability: block}); codeOf(err) != codes.InvalidArgument {
		t.Errorf("stage a mount volume as block: %v", err)
	}
	if _, err := d.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: "nope", VolumePath: "/t", VolumeCapability: block,
		CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 30}}); codeOf(err) != codes.NotFound {
		t.Errorf("expand an unknown block volume: %v", err)
	}
	if _, err := d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "fail-publish-b", StagingTargetPath: staging,
		TargetPath: filepath.Join(staging, "t"), VolumeCapability: block}); err != errInjectedPublish {
		t.Errorf("fail-publish, block: %v", err)
	}
	hctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := d.NodeStageVolume(hctx, &csi.NodeStageVolumeRequest{VolumeId: "hang-stage-b", StagingTargetPath: staging, VolumeCapability: block}); codeOf(err) != codes.DeadlineExceeded {
		t.Errorf("hang-stage, block: %v", err)
	}
}

// blockBed is a driver and the kubelet's block layout in a temporary folder; every loop
// device and mount the test makes goes at cleanup, whatever failed.
type blockBed struct {
	t    *testing.T
	d    *driver
	root string
}

func newBlockBed(t *testing.T) *blockBed {
	if os.Geteuid() != 0 {
		t.Skip("loop devices and bind mounts need root")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skipf("no loop devices: %v", err)
	}
	if _, err := losetup(context.Background(), "--version"); err != nil {
		t.Skipf("no losetup: %v", err)
	}
	root := t.TempDir()
	d, err := newDriver("n1", filepath.Join(root, "state"))
	if err != nil {
		t.Fatal(err)
	}
	b := &blockBed{t: t, d: d, root: root}
	t.Cleanup(b.cleanup)
	return b
}

func (b *blockBed) cleanup() {
	ctx := context.Background()
	targets, _ := filepath.Glob(filepath.Join(b.root, "publish", "*", "*"))
	for _, p := range targets {
		if err := b.d.unmount(ctx, p); err != nil {
			b.t.Errorf("cleanup: %v", err)
		}
	}
	imgs, _ := filepath.Glob(filepath.Join(b.d.stateDir, "volumes", "*.img"))
	for _, img := range imgs {
		devs, _ := loopsOf(ctx, img)
		for _, dev := range devs {
			if _, err := losetup(ctx, "-d", dev); err != nil {
				b.t.Errorf("cleanup: %v", err)
			}
		}
	}
}

// staging is the kubelet's volumeDevices/staging/<pv> folder (it makes it).
func (b *blockBed) staging(pv string) string {
	p := filepath.Join(b.root, "staging", pv)
	if err := os.MkdirAll(p, 0o750); err != nil {
		b.t.Fatal(err)
	}
	return p
}

// target is the kubelet's volumeDevices/publish/<pv>/<pod> (it makes the parent only).
func (b *blockBed) target(pv, pod string) string {
	p := filepath.Join(b.root, "publish", pv, pod)
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		b.t.Fatal(err)
	}
	return p
}

func (b *blockBed) stage(id string, volumeContext map[string]string) {
	b.t.Helper()
	if _, err := b.d.NodeStageVolume(context.Background(), &csi.NodeStageVolumeRequest{VolumeId: id, StagingTargetPath: b.staging(id),
		VolumeCapability: block, VolumeContext: volumeContext}); err != nil {
		b.t.Fatalf("stage %s: %v", id, err)
	}
}

func (b *blockBed) publish(id, pod string, ro bool) string {
	b.t.Helper()
	target := b.target(id, pod)
	if _, err := b.d.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{VolumeId: id, StagingTargetPath: b.staging(id),
		TargetPath: target, VolumeCapability: block, Readonly: ro}); err != nil {
		b.t.Fatalf("publish %s: %v", id, err)
	}
	return target
}

func (b *blockBed) unpublish(id, target string) {
	b.t.Helper()
	if _, err := b.d.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target}); err != nil {
		b.t.Fatalf("unpublish %s: %v", target, err)
	}
}

func (b *blockBed) unstage(id string) {
	b.t.Helper()
	if _, err := b.d.NodeUnstageVolume(context.Background(), &csi.NodeUnstageVolumeRequest{VolumeId: id, StagingTargetPath: b.staging(id)}); err != nil {
		b.t.Fatalf("unstage %s: %v", id, err)
	}
}

// loops is what losetup -j says backs onto the volume's image.
func (b *blockBed) loops(id string) []string {
	b.t.Helper()
	devs, err := loopsOf(context.Background(), b.d.imagePath(id))
	if err != nil {
		b.t.Fatal(err)
	}
	return devs
}

func (b *blockBed) totalBytes(id, path string) int64 {
	b.t.Helper()
	st, err := b.d.NodeGetVolumeStats(context.Background(), &csi.NodeGetVolumeStatsRequest{VolumeId: id, VolumePath: path})
	if err != nil {
		b.t.Fatalf("stats %s: %v", path, err)
	}
	if len(st.Usage) != 1 || st.Usage[0].Unit != csi.VolumeUsage_BYTES || st.Usage[0].Available != 0 || st.Usage[0].Used != 0 {
		b.t.Fatalf("stats of a block volume: %v, want one BYTES usage with only a total", st.Usage)
	}
	return st.Usage[0].Total
}

// TestNodeServiceBlock runs a block volume through the kubelet's calls on real loop
// devices: stage, publish (read-write and read-only), stats, expand, a driver restart,
// unpublish, unstage.
func TestNodeServiceBlock(t *testing.T) {
	b := newBlockBed(t)
	d, ctx := b.d, context.Background()
	// As on the bed: the controller's state is not the node's; the size comes in the volume context.
	ctrl, err := newDriver("controller", filepath.Join(b.root, "controller"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "b1", CapacityRange: &csi.CapacityRange{RequiredBytes: 8 << 20},
		VolumeCapabilities: []*csi.VolumeCapability{block}})
	if err != nil {
		t.Fatal(err)
	}
	vc := v.Volume.VolumeContext
	if _, err := d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "b1", StagingTargetPath: b.staging("b1"),
		TargetPath: b.target("b1", "pod1"), VolumeCapability: block}); codeOf(err) != codes.FailedPrecondition {
		t.Fatalf("publish before stage: %v", err)
	}
	b.stage("b1", vc)
	b.stage("b1", vc) // idempotent: one attachment
	loops := b.loops("b1")
	if rec, err := os.ReadFile(d.loopState("b1")); len(loops) != 1 || err != nil || string(rec) != loops[0]+"\n" {
		t.Fatalf("after stage: attachments %v, record %q %v", loops, rec, err)
	}
	if ok, _ := d.mounted(b.staging("b1")); ok {
		t.Error("the staging folder of a block volume is a mount")
	}

	target := b.publish("b1", "pod1", false)
	b.publish("b1", "pod1", false) // idempotent
	checkDeviceBind(t, target, false)
	roTarget := b.publish("b1", "pod2", true)
	checkDeviceBind(t, roTarget, true)

	data := []byte("written through the published file")
	writeAt(t, target, data, 4096)
	if got := readAt(t, roTarget, len(data), 4096); !bytes.Equal(got, data) {
		t.Errorf("read through the other publish: %q", got)
	}
	if got := readAt(t, d.imagePath("b1"), len(data), 4096); !bytes.Equal(got, data) {
		t.Errorf("read from the backing file: %q", got)
	}

	if total := b.totalBytes("b1", target); total != 8<<20 {
		t.Errorf("stats total %d, want 8 MiB", total)
	}
	if _, err := d.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: "nope", VolumePath: target}); codeOf(err) != codes.NotFound {
		t.Errorf("stats of an unknown volume: %v", err)
	}
	ex, err := d.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: "b1", VolumePath: target, VolumeCapability: block,
		CapacityRange: &csi.CapacityRange{RequiredBytes: 32 << 20}})
	if err != nil || ex.CapacityBytes != 32<<20 {
		t.Fatalf("expand: %v %v", ex, err)
	}
	if total := b.totalBytes("b1", target); total != 32<<20 {
		t.Errorf("stats total after expand %d, want 32 MiB", total)
	}

	// A restarted driver finds the loop device through its record.
	if b.d, err = newDriver("n1", d.stateDir); err != nil {
		t.Fatal(err)
	}
	b.publish("b1", "pod3", false)
	if got := readAt(t, b.target("b1", "pod3"), len(data), 4096); !bytes.Equal(got, data) {
		t.Errorf("read after a restart: %q", got)
	}
	for range 2 { // idempotent
		for _, pod := range []string{"pod1", "pod2", "pod3"} {
			b.unpublish("b1", b.target("b1", pod))
		}
	}
	b.unstage("b1")
	b.unstage("b1")
	b.checkReleased("b1", "pod1", "pod2", "pod3")
}

// checkReleased: after unpublish and unstage, no target file, mount, loop device or
// record of the volume is left.
func (b *blockBed) checkReleased(id string, pods ...string) {
	b.t.Helper()
	for _, pod := range pods {
		if _, err := os.Stat(b.target(id, pod)); !errors.Is(err, os.ErrNotExist) {
			b.t.Errorf("target file of %s left: %v", pod, err)
		}
	}
	if out, err := losetup(context.Background(), "-j", b.d.imagePath(id)); err != nil || out != "" {
		b.t.Errorf("losetup -j after unstage: %q %v", out, err)
	}
	if _, err := os.Stat(b.d.loopState(id)); !errors.Is(err, os.ErrNotExist) {
		b.t.Errorf("loop record left: %v", err)
	}
	if j := journal(b.t, b.d); len(j) != 0 {
		b.t.Errorf("journal after unpublish: %v", j)
	}
}

// TestNodeServiceBlockRecovery: a static PV's handle (never created), an attachment left
// by a crash before its record, and a stale record (a reboot freed the device).
func TestNodeServiceBlockRecovery(t *testing.T) {
	b := newBlockBed(t)
	ctx := context.Background()
	b.stage("static-1", nil)
	if fi, err := os.Stat(b.d.imagePath("static-1")); err != nil || fi.Size() != DefaultBlockSize {
		t.Fatalf("static volume's backing file: %v %v", fi, err)
	}
	if total := b.totalBytes("static-1", b.publish("static-1", "pod", false)); total != DefaultBlockSize {
		t.Errorf("static volume total %d", total)
	}
	b.unpublish("static-1", b.target("static-1", "pod"))
	b.unstage("static-1")

	// Crash: attached, not recorded. Stage adopts the attachment, unstage detaches it.
	leaked, err := losetup(ctx, "-f", "--show", b.d.imagePath("static-1"))
	if err != nil {
		t.Fatal(err)
	}
	b.stage("static-1", nil)
	if loops := b.loops("static-1"); !slices.Equal(loops, []string{leaked}) {
		t.Errorf("stage after a crash: attachments %v, want only %s", loops, leaked)
	}
	b.unstage("static-1")

	// Stale record: stage attaches afresh; unstage leaves the recorded device alone.
	if err := os.WriteFile(b.d.loopState("static-1"), []byte(leaked+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "static-1", StagingTargetPath: b.staging("static-1"),
		TargetPath: b.target("static-1", "pod"), VolumeCapability: block}); codeOf(err) != codes.FailedPrecondition {
		t.Errorf("publish on a stale record: %v", err)
	}
	b.stage("static-1", nil)
	if loops := b.loops("static-1"); len(loops) != 1 {
		t.Errorf("stage on a stale record: attachments %v", loops)
	}
	b.unstage("static-1")
	b.checkReleased("static-1", "pod")
}

// checkDeviceBind: target is a file bind-mounted from a block device, read-only as asked.
func checkDeviceBind(t *testing.T, target string, ro bool) {
	t.Helper()
	fi, err := os.Stat(target)
	if err != nil || fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0 {
		t.Fatalf("%s: %v %v, want a block device", target, fi, err)
	}
	ms, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(target))
	if err != nil || len(ms) == 0 {
		t.Fatalf("%s is not a mount: %v", target, err)
	}
	m := ms[len(ms)-1]
	if got := slices.Contains(strings.Split(m.Options, ","), "ro"); got != ro {
		t.Errorf("%s: mount options %s, read-only %v, want %v", target, m.Options, got, ro)
	}
}

func writeAt(t *testing.T, p string, b []byte, off int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func readAt(t *testing.T, p string, n int, off int64) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}
