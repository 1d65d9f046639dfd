package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// driver is one node's instance: identity, controller and node services over the state
// folder:
//
//	volumes/<handle>/         a mount volume's data (bind-mounted to the staging and target paths)
//	volumes/<handle>.img      a block volume's backing file (sparse), loop-attached when staged
//	block/<handle>            the loop device of a staged block volume ("/dev/loopN")
//	ephemeral/<handle>        marks an inline ephemeral volume (its data goes on unpublish)
//	attachments/<handle>/<n>  ControllerPublishVolume of the volume to node n
//	mounts/<sha256(target)>   a mount this driver made and has not unmade (its target path)
type driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer

	nodeID   string
	stateDir string
	version  string

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per volume handle
}

func newDriver(nodeID, stateDir string) (*driver, error) {
	stateDir, err := filepath.Abs(stateDir) // losetup -j matches backing files by path
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"volumes", "block", "ephemeral", "attachments", "mounts"} {
		if err := os.MkdirAll(filepath.Join(stateDir, d), 0o755); err != nil {
			return nil, err
		}
	}
	return &driver{nodeID: nodeID, stateDir: stateDir, version: "0.1.0", locks: map[string]*sync.Mutex{}}, nil
}

// lock serialises the calls for one volume.
func (d *driver) lock(id string) func() {
	d.mu.Lock()
	l := d.locks[id]
	if l == nil {
		l = &sync.Mutex{}
		d.locks[id] = l
	}
	d.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func (d *driver) dataDir(id string) string { return filepath.Join(d.stateDir, "volumes", id) }

// ---- Identity

func (d *driver) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: DriverName, VendorVersion: d.version}, nil
}

func (d *driver) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	svc := func(t csi.PluginCapability_Service_Type) *csi.PluginCapability {
		return &csi.PluginCapability{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: t}}}
	}
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{
		svc(csi.PluginCapability_Service_CONTROLLER_SERVICE),
		svc(csi.PluginCapability_Service_VOLUME_ACCESSIBILITY_CONSTRAINTS),
	}}, nil
}

func (d *driver) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{}, nil
}

// ---- Controller

func (d *driver) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, t := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_PUBLISH_UNPUBLISH_VOLUME,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: t}}})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

// ControllerPublishVolume records the attachment. The controller is node-independent: a
// static volume's data folder appears on its node's first NodeStageVolume, so a volume
// unknown here is not an error.
func (d *driver) ControllerPublishVolume(ctx context.Context, r *csi.ControllerPublishVolumeRequest) (*csi.ControllerPublishVolumeResponse, error) {
	if err := validateControllerPublish(r); err != nil {
		return nil, err
	}
	defer d.lock(r.GetVolumeId())()
	dir := filepath.Join(d.stateDir, "attachments", r.GetVolumeId())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := os.WriteFile(filepath.Join(dir, r.GetNodeId()), []byte(strconv.FormatBool(r.GetReadonly())+"\n"), 0o644); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.ControllerPublishVolumeResponse{PublishContext: map[string]string{AttachedByKey: r.GetNodeId()}}, nil
}

func (d *driver) ControllerUnpublishVolume(ctx context.Context, r *csi.ControllerUnpublishVolumeRequest) (*csi.ControllerUnpublishVolumeResponse, error) {
	if err := validateControllerUnpublish(r); err != nil {
		return nil, err
	}
	defer d.lock(r.GetVolumeId())()
	dir := filepath.Join(d.stateDir, "attachments", r.GetVolumeId())
	if r.GetNodeId() == "" { // from every node
		if err := os.RemoveAll(dir); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	} else if err := os.Remove(filepath.Join(dir, r.GetNodeId())); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, status.Error(codes.Internal, err.Error())
	}
	_ = os.Remove(dir) // once empty
	return &csi.ControllerUnpublishVolumeResponse{}, nil
}

// CreateVolume makes the data folder here, named as the request, or for block access the
// backing file; DeleteVolume removes either.
func (d *driver) CreateVolume(ctx context.Context, r *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if err := validateCreateVolume(r); err != nil {
		return nil, err
	}
	defer d.lock(r.GetName())()
	block := isBlock(r.GetVolumeCapabilities()[0]) // validateCreateVolume: all of one kind
	if err := d.kindConflict(r.GetName(), block, codes.AlreadyExists); err != nil {
		return nil, err
	}
	capacity, volumeContext := r.GetCapacityRange().GetRequiredBytes(), r.GetParameters()
	var err error
	if block {
		capacity, volumeContext, err = d.createBlock(r)
	} else if err = os.MkdirAll(d.dataDir(r.GetName()), 0o777); err == nil {
		_ = os.Chmod(d.dataDir(r.GetName()), 0o777)
	}
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:           r.GetName(),
		CapacityBytes:      capacity,
		VolumeContext:      volumeContext,
		AccessibleTopology: []*csi.Topology{{Segments: map[string]string{TopologyKey: d.nodeID}}},
	}}, nil
}

func (d *driver) DeleteVolume(ctx context.Context, r *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if err := checkVolumeID(r.GetVolumeId()); err != nil {
		return nil, err
	}
	defer d.lock(r.GetVolumeId())()
	for _, p := range []string{d.dataDir(r.GetVolumeId()), d.imagePath(r.GetVolumeId())} {
		if err := os.RemoveAll(p); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	return &csi.DeleteVolumeResponse{}, nil
}

func (d *driver) ValidateVolumeCapabilities(ctx context.Context, r *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if err := validateValidateCapabilities(r); err != nil {
		return nil, err
	}
	for _, c := range r.GetVolumeCapabilities() {
		if err := first(checkCapability(c), d.kindConflict(r.GetVolumeId(), isBlock(c), codes.InvalidArgument)); err != nil {
			return &csi.ValidateVolumeCapabilitiesResponse{Message: status.Convert(err).Message()}, nil
		}
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext: r.GetVolumeContext(), VolumeCapabilities: r.GetVolumeCapabilities(), Parameters: r.GetParameters(),
	}}, nil
}

// ---- Node

func (d *driver) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	return &csi.NodeGetInfoResponse{
		NodeId:             d.nodeID,
		MaxVolumesPerNode:  0,
		AccessibleTopology: &csi.Topology{Segments: map[string]string{TopologyKey: d.nodeID}},
	}, nil
}

func (d *driver) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	var caps []*csi.NodeServiceCapability
	for _, t := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csi.NodeServiceCapability_RPC_EXPAND_VOLUME,
	} {
		caps = append(caps, &csi.NodeServiceCapability{Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: t}}})
	}
	return &csi.NodeGetCapabilitiesResponse{Capabilities: caps}, nil
}

// NodeStageVolume binds the volume's data folder (made if missing) onto the staging path,
// which the CO must have created; a block volume's backing file is attached to a loop
// device instead (the staging path stays an empty folder).
func (d *driver) NodeStageVolume(ctx context.Context, r *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	if err := validateNodeStage(r); err != nil {
		return nil, err
	}
	if faultOf(r.GetVolumeId()) == hangStage {
		// Calls are logged when answered; this one is logged when it starts hanging, so
		// tests see it in flight.
		log.Printf("csi-hang: NodeStageVolume volume_id=%s hangs until the caller gives up", r.GetVolumeId())
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	defer d.lock(r.GetVolumeId())()
	staging := r.GetStagingTargetPath()
	if fi, err := os.Stat(staging); err != nil || !fi.IsDir() {
		return nil, status.Errorf(codes.FailedPrecondition, "staging_target_path %s is not a directory the CO made: %v", staging, err)
	}
	block := isBlock(r.GetVolumeCapability())
	if err := d.kindConflict(r.GetVolumeId(), block, codes.InvalidArgument); err != nil {
		return nil, err
	}
	var err error
	if block {
		var size int64
		if size, err = blockSizeOf(r.GetVolumeContext()); err != nil {
			return nil, err
		}
		err = d.stageBlock(ctx, r.GetVolumeId(), size)
	} else {
		err = d.stageMount(ctx, r.GetVolumeId(), staging)
	}
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.NodeStageVolumeResponse{}, nil
}

func (d *driver) stageMount(ctx context.Context, id, staging string) error {
	if ok, err := d.mounted(staging); err != nil || ok {
		if ok {
			note(ctx, "already staged")
		}
		return err
	}
	data := d.dataDir(id)
	if _, err := os.Stat(data); errors.Is(err, fs.ErrNotExist) {
		note(ctx, "data folder created")
	}
	if err := os.MkdirAll(data, 0o777); err != nil {
		return err
	}
	_ = os.Chmod(data, 0o777)
	return d.bind(data, staging, false)
}

// NodeUnstageVolume unmounts the staging path, or detaches a block volume's loop device
// (the handle's backing file or loop record says which).
func (d *driver) NodeUnstageVolume(ctx context.Context, r *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	if err := validateNodeUnstage(r); err != nil {
		return nil, err
	}
	defer d.lock(r.GetVolumeId())()
	var err error
	if exists(d.imagePath(r.GetVolumeId())) || exists(d.loopState(r.GetVolumeId())) {
		err = d.unstageBlock(ctx, r.GetVolumeId())
	} else {
		err = d.unmount(ctx, r.GetStagingTargetPath())
	}
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.NodeUnstageVolumeResponse{}, nil
}

// NodePublishVolume binds the staging path onto the target path, or for an inline
// ephemeral volume a fresh data folder, or for a block volume its loop device onto a
// target file. A missing target path is made (the CO makes its parent).
func (d *driver) NodePublishVolume(ctx context.Context, r *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	if err := validateNodePublish(r); err != nil {
		return nil, err
	}
	if faultOf(r.GetVolumeId()) == failPublish {
		return nil, errInjectedPublish
	}
	defer d.lock(r.GetVolumeId())()
	target := r.GetTargetPath()
	ro := r.GetReadonly()
	switch r.GetVolumeCapability().GetAccessMode().GetMode() {
	case csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY, csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY:
		ro = true
	}
	if ok, err := d.mounted(target); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	} else if ok {
		note(ctx, "already published")
		return &csi.NodePublishVolumeResponse{}, nil
	}
	block := isBlock(r.GetVolumeCapability())
	var src string
	var err error
	if block {
		src, err = d.blockSource(ctx, r)
	} else {
		src, err = d.mountSource(r)
	}
	if err != nil {
		return nil, err
	}
	if err := makeTarget(ctx, target, block); err != nil {
		return nil, err
	}
	if err := d.bind(src, target, ro); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if ro {
		note(ctx, "read-only")
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

// mountSource is what NodePublishVolume binds for a mount volume: the staging path, or an
// ephemeral volume's data folder (made here).
func (d *driver) mountSource(r *csi.NodePublishVolumeRequest) (string, error) {
	src := r.GetStagingTargetPath()
	if !isEphemeral(r.GetVolumeContext()) {
		if ok, err := d.mounted(src); err != nil || !ok {
			return "", status.Errorf(codes.FailedPrecondition, "volume %s is not staged at %s", r.GetVolumeId(), src)
		}
		return src, nil
	}
	src = d.dataDir(r.GetVolumeId())
	if err := os.WriteFile(filepath.Join(d.stateDir, "ephemeral", r.GetVolumeId()), []byte(r.GetTargetPath()+"\n"), 0o644); err != nil {
		return "", status.Error(codes.Internal, err.Error())
	}
	if err := os.MkdirAll(src, 0o777); err != nil {
		return "", status.Error(codes.Internal, err.Error())
	}
	_ = os.Chmod(src, 0o777)
	return src, nil
}

// NodeUnpublishVolume unmounts and removes the target path (gone already: done); an
// ephemeral volume's data goes too.
func (d *driver) NodeUnpublishVolume(ctx context.Context, r *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	if err := validateNodeUnpublish(r); err != nil {
		return nil, err
	}
	defer d.lock(r.GetVolumeId())()
	target := r.GetTargetPath()
	if err := d.unmount(ctx, target); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, status.Errorf(codes.Internal, "remove target_path: %v", err)
	}
	marker := filepath.Join(d.stateDir, "ephemeral", r.GetVolumeId())
	if _, err := os.Stat(marker); err == nil {
		if err := os.RemoveAll(d.dataDir(r.GetVolumeId())); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		_ = os.Remove(marker)
		note(ctx, "ephemeral data removed")
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

// NodeGetVolumeStats measures a folder with statfs, or a block device (the target file a
// block volume is published on) by its size.
func (d *driver) NodeGetVolumeStats(ctx context.Context, r *csi.NodeGetVolumeStatsRequest) (*csi.NodeGetVolumeStatsResponse, error) {
	if err := validateNodeGetVolumeStats(r); err != nil {
		return nil, err
	}
	if !exists(d.dataDir(r.GetVolumeId())) && !exists(d.imagePath(r.GetVolumeId())) {
		return nil, status.Errorf(codes.NotFound, "volume %s: no data folder or backing file", r.GetVolumeId())
	}
	p := r.GetVolumePath()
	fi, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, status.Errorf(codes.NotFound, "volume_path %s: %v", p, err)
	case err != nil:
		return nil, status.Errorf(codes.Internal, "stat %s: %v", p, err)
	case fi.Mode()&fs.ModeDevice != 0 && fi.Mode()&fs.ModeCharDevice == 0:
		return deviceStats(p)
	case !fi.IsDir(): // e.g. a block target file whose bind is gone
		return nil, status.Errorf(codes.NotFound, "volume_path %s is neither a folder nor a block device", p)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return nil, status.Errorf(codes.Internal, "statfs %s: %v", p, err)
	}
	bs := int64(st.Bsize)
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{
		{Unit: csi.VolumeUsage_BYTES, Total: int64(st.Blocks) * bs, Available: int64(st.Bavail) * bs, Used: int64(st.Blocks-st.Bfree) * bs},
		{Unit: csi.VolumeUsage_INODES, Total: int64(st.Files), Available: int64(st.Ffree), Used: int64(st.Files - st.Ffree)},
	}}, nil
}

// CapacityFile is the file in a volume's data folder NodeExpandVolume writes the
// requested capacity (bytes, decimal) to.
const CapacityFile = ".csi-capacity-bytes"

// NodeExpandVolume records a mount volume's new capacity, or grows a block volume's
// backing file and loop device.
func (d *driver) NodeExpandVolume(ctx context.Context, r *csi.NodeExpandVolumeRequest) (*csi.NodeExpandVolumeResponse, error) {
	if err := validateNodeExpand(r); err != nil {
		return nil, err
	}
	defer d.lock(r.GetVolumeId())()
	c := capacityFor(r.GetCapacityRange())
	if isBlock(r.GetVolumeCapability()) || exists(d.imagePath(r.GetVolumeId())) {
		size, err := d.expandBlock(ctx, r.GetVolumeId(), c)
		if err != nil {
			return nil, err
		}
		return &csi.NodeExpandVolumeResponse{CapacityBytes: size}, nil
	}
	data := d.dataDir(r.GetVolumeId())
	if _, err := os.Stat(data); err != nil {
		return nil, status.Errorf(codes.NotFound, "volume %s: %v", r.GetVolumeId(), err)
	}
	if err := os.WriteFile(filepath.Join(data, CapacityFile), []byte(strconv.FormatInt(c, 10)+"\n"), 0o644); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.NodeExpandVolumeResponse{CapacityBytes: c}, nil
}

// ---- mounts

func (d *driver) mounted(p string) (bool, error) {
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return mountinfo.Mounted(p)
}

func (d *driver) journal(target string) string {
	sum := sha256.Sum256([]byte(target))
	return filepath.Join(d.stateDir, "mounts", hex.EncodeToString(sum[:]))
}

// bind mounts src on target (read-only if ro), journalled first so that whoever cleans up
// after the driver knows its mounts.
func (d *driver) bind(src, target string, ro bool) error {
	if err := os.WriteFile(d.journal(target), []byte(target), 0o644); err != nil {
		return err
	}
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		_ = os.Remove(d.journal(target))
		return fmt.Errorf("bind %s on %s: %w", src, target, err)
	}
	if ro {
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			_ = unix.Unmount(target, 0)
			_ = os.Remove(d.journal(target))
			return fmt.Errorf("remount %s read-only: %w", target, err)
		}
	}
	return nil
}

// unmount unmounts p if it is a mount point (every layer); absent or not mounted is done.
func (d *driver) unmount(ctx context.Context, p string) error {
	for i := 0; ; i++ {
		ok, err := d.mounted(p)
		if err != nil {
			return err
		}
		if !ok {
			if i == 0 {
				note(ctx, "not mounted")
			}
			break
		}
		if err := unix.Unmount(p, 0); err != nil {
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	_ = os.Remove(d.journal(p))
	return nil
}
