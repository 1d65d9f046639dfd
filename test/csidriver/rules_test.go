package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func mountCap(mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode}}
}

func blockCap(mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode}}
}

var (
	rw    = mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
	block = blockCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)
)

func codeOf(err error) codes.Code { return status.Code(err) }

func TestValidation(t *testing.T) {
	noMode := &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}}
	blockNoMode := &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}}
	noType := &csi.VolumeCapability{AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}
	eph := map[string]string{EphemeralKey: "true"}
	cases := []struct {
		name string
		err  error
		want codes.Code
	}{
		{"stage ok", validateNodeStage(&csi.NodeStageVolumeRequest{VolumeId: "v", StagingTargetPath: "/s", VolumeCapability: rw}), codes.OK},
		{"stage no id", validateNodeStage(&csi.NodeStageVolumeRequest{StagingTargetPath: "/s", VolumeCapability: rw}), codes.InvalidArgument},
		{"stage no path", validateNodeStage(&csi.NodeStageVolumeRequest{VolumeId: "v", VolumeCapability: rw}), codes.InvalidArgument},
		{"stage relative path", validateNodeStage(&csi.NodeStageVolumeRequest{VolumeId: "v", StagingTargetPath: "s", VolumeCapability: rw}), codes.InvalidArgument},
		{"stage no capability", validateNodeStage(&csi.NodeStageVolumeRequest{VolumeId: "v", StagingTargetPath: "/s"}), codes.InvalidArgument},
		{"stage block", validateNodeStage(&csi.NodeStageVolumeRequest{VolumeId: "v", StagingTargetPath: "/s", VolumeCapability: block}), codes.OK},
		{"stage block no access mode", validateNodeStage(&csi.NodeStageVolumeRequest{VolumeId: "v", StagingTargetPath: "/s", VolumeCapability: blockNoMode}), codes.InvalidArgument},
		{"stage no access type", validateNodeStage(&csi.NodeStageVolumeRequest{VolumeId: "v", StagingTargetPath: "/s", VolumeCapability: noType}), codes.InvalidArgument},
		{"stage no access mode", validateNodeStage(&csi.NodeStageVolumeRequest{VolumeId: "v", StagingTargetPath: "/s", VolumeCapability: noMode}), codes.InvalidArgument},
		{"stage id with slash", validateNodeStage(&csi.NodeStageVolumeRequest{VolumeId: "a/b", StagingTargetPath: "/s", VolumeCapability: rw}), codes.InvalidArgument},
		{"stage id ..", validateNodeStage(&csi.NodeStageVolumeRequest{VolumeId: "..", StagingTargetPath: "/s", VolumeCapability: rw}), codes.InvalidArgument},
		{"unstage ok", validateNodeUnstage(&csi.NodeUnstageVolumeRequest{VolumeId: "v", StagingTargetPath: "/s"}), codes.OK},
		{"unstage no path", validateNodeUnstage(&csi.NodeUnstageVolumeRequest{VolumeId: "v"}), codes.InvalidArgument},
		{"unstage no id", validateNodeUnstage(&csi.NodeUnstageVolumeRequest{StagingTargetPath: "/s"}), codes.InvalidArgument},
		{"publish ok", validateNodePublish(&csi.NodePublishVolumeRequest{VolumeId: "v", StagingTargetPath: "/s", TargetPath: "/t", VolumeCapability: rw}), codes.OK},
		{"publish no target", validateNodePublish(&csi.NodePublishVolumeRequest{VolumeId: "v", StagingTargetPath: "/s", VolumeCapability: rw}), codes.InvalidArgument},
		{"publish no capability", validateNodePublish(&csi.NodePublishVolumeRequest{VolumeId: "v", StagingTargetPath: "/s", TargetPath: "/t"}), codes.InvalidArgument},
		{"publish not staged", validateNodePublish(&csi.NodePublishVolumeRequest{VolumeId: "v", TargetPath: "/t", VolumeCapability: rw}), codes.FailedPrecondition},
		{"publish ephemeral", validateNodePublish(&csi.NodePublishVolumeRequest{VolumeId: "v", TargetPath: "/t", VolumeCapability: rw, VolumeContext: eph}), codes.OK},
		{"publish block", validateNodePublish(&csi.NodePublishVolumeRequest{VolumeId: "v", StagingTargetPath: "/s", TargetPath: "/t", VolumeCapability: block}), codes.OK},
		{"publish block not staged", validateNodePublish(&csi.NodePublishVolumeRequest{VolumeId: "v", TargetPath: "/t", VolumeCapability: block}), codes.FailedPrecondition},
		{"publish no access type", validateNodePublish(&csi.NodePublishVolumeRequest{VolumeId: "v", StagingTargetPath: "/s", TargetPath: "/t", VolumeCapability: noType}), codes.InvalidArgument},
		{"publish ephemeral block", validateNodePublish(&csi.NodePublishVolumeRequest{VolumeId: "v", TargetPath: "/t", VolumeCapability: block, VolumeContext: eph}), codes.InvalidArgument},
		{"publish ephemeral staged", validateNodePublish(&csi.NodePublishVolumeRequest{VolumeId: "v", StagingTargetPath: "/s", TargetPath: "/t", VolumeCapability: rw, VolumeContext: eph}), codes.InvalidArgument},
		{"unpublish ok", validateNodeUnpublish(&csi.NodeUnpublishVolumeRequest{VolumeId: "v", TargetPath: "/t"}), codes.OK},
		{"unpublish no target", validateNodeUnpublish(&csi.NodeUnpublishVolumeRequest{VolumeId: "v"}), codes.InvalidArgument},
		{"stats no path", validateNodeGetVolumeStats(&csi.NodeGetVolumeStatsRequest{VolumeId: "v"}), codes.InvalidArgument},
		{"stats no id", validateNodeGetVolumeStats(&csi.NodeGetVolumeStatsRequest{VolumePath: "/t"}), codes.InvalidArgument},
		{"expand ok", validateNodeExpand(&csi.NodeExpandVolumeRequest{VolumeId: "v", VolumePath: "/t", CapacityRange: &csi.CapacityRange{RequiredBytes: 1}}), codes.OK},
		{"expand no range", validateNodeExpand(&csi.NodeExpandVolumeRequest{VolumeId: "v", VolumePath: "/t"}), codes.InvalidArgument},
		{"controller publish ok", validateControllerPublish(&csi.ControllerPublishVolumeRequest{VolumeId: "v", NodeId: "n", VolumeCapability: rw}), codes.OK},
		{"controller publish no node", validateControllerPublish(&csi.ControllerPublishVolumeRequest{VolumeId: "v", VolumeCapability: rw}), codes.InvalidArgument},
		{"controller publish bad node", validateControllerPublish(&csi.ControllerPublishVolumeRequest{VolumeId: "v", NodeId: "a/b", VolumeCapability: rw}), codes.NotFound},
		{"controller publish block", validateControllerPublish(&csi.ControllerPublishVolumeRequest{VolumeId: "v", NodeId: "n", VolumeCapability: block}), codes.OK},
		{"controller publish no access type", validateControllerPublish(&csi.ControllerPublishVolumeRequest{VolumeId: "v", NodeId: "n", VolumeCapability: noType}), codes.InvalidArgument},
		{"controller publish no capability", validateControllerPublish(&csi.ControllerPublishVolumeRequest{VolumeId: "v", NodeId: "n"}), codes.InvalidArgument},
		{"controller unpublish any node", validateControllerUnpublish(&csi.ControllerUnpublishVolumeRequest{VolumeId: "v"}), codes.OK},
		{"create ok", validateCreateVolume(&csi.CreateVolumeRequest{Name: "pvc-1", VolumeCapabilities: []*csi.VolumeCapability{rw}}), codes.OK},
		{"create block", validateCreateVolume(&csi.CreateVolumeRequest{Name: "pvc-1", VolumeCapabilities: []*csi.VolumeCapability{block, blockCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER)}}), codes.OK},
		{"create block and mount", validateCreateVolume(&csi.CreateVolumeRequest{Name: "pvc-1", VolumeCapabilities: []*csi.VolumeCapability{block, rw}}), codes.InvalidArgument},
		{"create mount and block", validateCreateVolume(&csi.CreateVolumeRequest{Name: "pvc-1", VolumeCapabilities: []*csi.VolumeCapability{rw, block}}), codes.InvalidArgument},
		{"create no access type", validateCreateVolume(&csi.CreateVolumeRequest{Name: "pvc-1", VolumeCapabilities: []*csi.VolumeCapability{noType}}), codes.InvalidArgument},
		{"create no name", validateCreateVolume(&csi.CreateVolumeRequest{VolumeCapabilities: []*csi.VolumeCapability{rw}}), codes.InvalidArgument},
		{"create no capabilities", validateCreateVolume(&csi.CreateVolumeRequest{Name: "pvc-1"}), codes.InvalidArgument},
		{"validate no capabilities", validateValidateCapabilities(&csi.ValidateVolumeCapabilitiesRequest{VolumeId: "v"}), codes.InvalidArgument},
	}
	for _, c := range cases {
		if got := codeOf(c.err); got != c.want {
			t.Errorf("%s: %v, want %s", c.name, c.err, c.want)
		}
	}
}

func TestBlockSizeOf(t *testing.T) {
	for _, c := range []struct {
		v    map[string]string
		want int64
		code codes.Code
	}{
		{nil, DefaultBlockSize, codes.OK},
		{map[string]string{"e2e": "static"}, DefaultBlockSize, codes.OK},
		{map[string]string{BlockSizeKey: "1048576"}, 1 << 20, codes.OK},
		{map[string]string{BlockSizeKey: "0"}, 0, codes.InvalidArgument},
		{map[string]string{BlockSizeKey: "-1"}, 0, codes.InvalidArgument},
		{map[string]string{BlockSizeKey: "1Gi"}, 0, codes.InvalidArgument},
	} {
		if got, err := blockSizeOf(c.v); got != c.want || codeOf(err) != c.code {
			t.Errorf("blockSizeOf(%v) = %d, %v; want %d, %s", c.v, got, err, c.want, c.code)
		}
	}
}

func TestFaults(t *testing.T) {
	for id, want := range map[string]fault{
		"fail-publish-x": failPublish, "fail-publish-": failPublish, "hang-stage-1": hangStage,
		"pv-fail-publish-x": noFault, "fail-stage-x": noFault, "": noFault, "hang-publish-x": noFault,
	} {
		if got := faultOf(id); got != want {
			t.Errorf("faultOf(%q) = %d, want %d", id, got, want)
		}
	}
	if codeOf(errInjectedPublish) != codes.Internal || status.Convert(errInjectedPublish).Message() != "injected publish failure" {
		t.Errorf("injected failure: %v", errInjectedPublish)
	}
}

func TestCallLine(t *testing.T) {
	line := callLine("NodePublishVolume", &csi.NodePublishVolumeRequest{VolumeId: "v1", StagingTargetPath: "/s", TargetPath: "/t",
		VolumeCapability: rw, Secrets: map[string]string{"password": "hunter2"}, VolumeContext: map[string]string{"a": "b\nc"}},
		nil, status.Error(codes.Internal, "boom"), []string{"target_path created"})
	for _, want := range []string{"csi: NodePublishVolume volume_id=v1 staging_target_path=/s target_path=/t -> Internal \"boom\"",
		`notes="target_path created"`, `"volume_context":`, `"SINGLE_NODE_WRITER"`} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "hunter2") || strings.Contains(line, "\n") {
		t.Errorf("line %q has a secret or a newline", line)
	}
}

// TestNodeService runs the node calls on real folders and bind mounts (as root, as the
// test bed does).
func TestNodeService(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("bind mounts need root")
	}
	dir := t.TempDir()
	d, err := newDriver("n1", filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	staging, target := filepath.Join(dir, "globalmount"), filepath.Join(dir, "pod", "mount")
	t.Cleanup(func() { _ = d.unmount(ctx, target); _ = d.unmount(ctx, staging) })
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "v1", StagingTargetPath: staging, VolumeCapability: rw}); codeOf(err) != codes.FailedPrecondition {
		t.Fatalf("stage on a missing staging path: %v", err)
	}
	if err := os.Mkdir(staging, 0o750); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if _, err := d.NodeStageVolume(ctx, &csi.NodeStageVolumeRequest{VolumeId: "v1", StagingTargetPath: staging, VolumeCapability: rw}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "v1", StagingTargetPath: staging, TargetPath: target, VolumeCapability: rw}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(target, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(d.dataDir("v1"), "f")); err != nil || string(b) != "x" {
		t.Fatalf("data folder: %q %v", b, err)
	}
	st, err := d.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: "v1", VolumePath: target})
	if err != nil || len(st.Usage) != 2 || st.Usage[0].Unit != csi.VolumeUsage_BYTES || st.Usage[0].Total <= 0 || st.Usage[1].Unit != csi.VolumeUsage_INODES {
		t.Fatalf("stats: %v %v", st, err)
	}
	if _, err := d.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: "nope", VolumePath: target}); codeOf(err) != codes.NotFound {
		t.Fatalf("stats of an unknown volume: %v", err)
	}
	ex, err := d.NodeExpandVolume(ctx, &csi.NodeExpandVolumeRequest{VolumeId: "v1", VolumePath: target, CapacityRange: &csi.CapacityRange{RequiredBytes: 2 << 30}})
	if err != nil || ex.CapacityBytes != 2<<30 {
		t.Fatalf("expand: %v %v", ex, err)
	}
	if len(journal(t, d)) != 2 {
		t.Fatalf("journal: %v", journal(t, d))
	}
	for range 2 {
		if _, err := d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "v1", TargetPath: target}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.NodeUnstageVolume(ctx, &csi.NodeUnstageVolumeRequest{VolumeId: "v1", StagingTargetPath: staging}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("target left: %v", err)
	}
	if ok, _ := d.mounted(staging); ok {
		t.Error("staging path still mounted")
	}
	if j := journal(t, d); len(j) != 0 {
		t.Errorf("journal after unmounts: %v", j)
	}

	// Read-only publish, and an ephemeral volume whose data goes with it.
	eph := filepath.Join(dir, "pod", "eph")
	t.Cleanup(func() { _ = d.unmount(ctx, eph) })
	if _, err := d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "csi-e1", TargetPath: eph, VolumeCapability: rw, Readonly: true,
		VolumeContext: map[string]string{EphemeralKey: "true"}}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(eph, "f"), nil, 0o644); err == nil {
		t.Error("wrote into a read-only publish")
	}
	if _, err := d.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: "csi-e1", TargetPath: eph}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.dataDir("csi-e1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ephemeral data left: %v", err)
	}

	// Faults.
	if _, err := d.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: "fail-publish-x", StagingTargetPath: staging, TargetPath: target, VolumeCapability: rw}); err != errInjectedPublish {
		t.Errorf("fail-publish: %v", err)
	}
	hctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := d.NodeStageVolume(hctx, &csi.NodeStageVolumeRequest{VolumeId: "hang-stage-x", StagingTargetPath: staging, VolumeCapability: rw}); codeOf(err) != codes.DeadlineExceeded || time.Since(start) < 200*time.Millisecond {
		t.Errorf("hang-stage: %v after %v", err, time.Since(start))
	}
}

func journal(t *testing.T, d *driver) []string {
	entries, err := os.ReadDir(filepath.Join(d.stateDir, "mounts"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}
