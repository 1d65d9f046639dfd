package main

import (
	"strconv"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The pure parts of the driver: request validation as the CSI spec asks, and the fault
// rules tests inject by volume handle.

const (
	// DriverName is the driver's name (CSIDriver object, CSINode, PV csi.driver).
	DriverName = "csi.e2e.minikubelet.io"
	// TopologyKey is the one topology segment: the node's ID.
	TopologyKey = "topology.csi.e2e.minikubelet.io/node"
	// EphemeralKey is the volume_context key Kubernetes sets for inline ephemeral volumes.
	EphemeralKey = "csi.storage.k8s.io/ephemeral"
	// AttachedByKey is the publish_context key ControllerPublishVolume returns.
	AttachedByKey = "attachedBy"
	// BlockSizeKey is the volume_context key with a block volume's size in bytes.
	BlockSizeKey = DriverName + "/block-size-bytes"

	failPublishPrefix = "fail-publish-"
	hangStagePrefix   = "hang-stage-"
)

// fault is what a volume handle asks the node service to do wrong.
type fault int

const (
	noFault     fault = iota
	failPublish       // NodePublishVolume returns codes.Internal
	hangStage         // NodeStageVolume blocks until its context ends
)

func faultOf(volumeID string) fault {
	switch {
	case strings.HasPrefix(volumeID, failPublishPrefix):
		return failPublish
	case strings.HasPrefix(volumeID, hangStagePrefix):
		return hangStage
	}
	return noFault
}

// errInjectedPublish is the failure fail-publish-* handles get.
var errInjectedPublish = status.Error(codes.Internal, "injected publish failure")

// checkVolumeID: present, and usable as one folder name under <state-dir>/volumes.
func checkVolumeID(id string) error {
	if id == "" {
		return status.Error(codes.InvalidArgument, "volume_id is required")
	}
	if id == "." || id == ".." || strings.ContainsAny(id, "/\x00") || len(id) > 200 {
		return status.Errorf(codes.InvalidArgument, "volume_id %q is not a valid volume handle of this driver", id)
	}
	return nil
}

// checkPath: a path field is required and absolute.
func checkPath(field, p string) error {
	if p == "" {
		return status.Errorf(codes.InvalidArgument, "%s is required", field)
	}
	if !strings.HasPrefix(p, "/") {
		return status.Errorf(codes.InvalidArgument, "%s %q is not absolute", field, p)
	}
	return nil
}

// checkCapability: present, of block or mount access type, with a known access mode.
func checkCapability(c *csi.VolumeCapability) error {
	if c == nil {
		return status.Error(codes.InvalidArgument, "volume_capability is required")
	}
	if c.GetBlock() == nil && c.GetMount() == nil {
		return status.Error(codes.InvalidArgument, "volume_capability has no access type")
	}
	if c.GetAccessMode() == nil || c.GetAccessMode().GetMode() == csi.VolumeCapability_AccessMode_UNKNOWN {
		return status.Error(codes.InvalidArgument, "volume_capability has no access mode")
	}
	return nil
}

// blockSizeOf is the size NodeStageVolume gives a block volume's missing backing file.
func blockSizeOf(volumeContext map[string]string) (int64, error) {
	v, ok := volumeContext[BlockSizeKey]
	if !ok {
		return DefaultBlockSize, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, status.Errorf(codes.InvalidArgument, "volume_context %s=%q is not a positive byte count", BlockSizeKey, v)
	}
	return n, nil
}

func isEphemeral(volumeContext map[string]string) bool {
	return volumeContext[EphemeralKey] == "true"
}

func validateNodeStage(r *csi.NodeStageVolumeRequest) error {
	return first(checkVolumeID(r.GetVolumeId()), checkPath("staging_target_path", r.GetStagingTargetPath()),
		checkCapability(r.GetVolumeCapability()))
}

func validateNodeUnstage(r *csi.NodeUnstageVolumeRequest) error {
	return first(checkVolumeID(r.GetVolumeId()), checkPath("staging_target_path", r.GetStagingTargetPath()))
}

func validateNodePublish(r *csi.NodePublishVolumeRequest) error {
	if err := first(checkVolumeID(r.GetVolumeId()), checkPath("target_path", r.GetTargetPath()),
		checkCapability(r.GetVolumeCapability())); err != nil {
		return err
	}
	if isEphemeral(r.GetVolumeContext()) {
		if r.GetVolumeCapability().GetBlock() != nil {
			return status.Error(codes.InvalidArgument, "an ephemeral volume is a mount volume, not block")
		}
		if r.GetStagingTargetPath() != "" {
			return status.Error(codes.InvalidArgument, "an ephemeral volume has no staging_target_path")
		}
		return nil
	}
	// The driver has STAGE_UNSTAGE_VOLUME: the spec's "staging target path not set".
	if r.GetStagingTargetPath() == "" {
		return status.Error(codes.FailedPrecondition, "staging_target_path is required: the driver has STAGE_UNSTAGE_VOLUME")
	}
	return checkPath("staging_target_path", r.GetStagingTargetPath())
}

func validateNodeUnpublish(r *csi.NodeUnpublishVolumeRequest) error {
	return first(checkVolumeID(r.GetVolumeId()), checkPath("target_path", r.GetTargetPath()))
}

func validateNodeGetVolumeStats(r *csi.NodeGetVolumeStatsRequest) error {
	return first(checkVolumeID(r.GetVolumeId()), checkPath("volume_path", r.GetVolumePath()))
}

func validateNodeExpand(r *csi.NodeExpandVolumeRequest) error {
	if err := first(checkVolumeID(r.GetVolumeId()), checkPath("volume_path", r.GetVolumePath())); err != nil {
		return err
	}
	if r.GetCapacityRange() == nil || r.GetCapacityRange().GetRequiredBytes() < 0 || r.GetCapacityRange().GetLimitBytes() < 0 {
		return status.Error(codes.InvalidArgument, "capacity_range is required and must not be negative")
	}
	return nil
}

func validateControllerPublish(r *csi.ControllerPublishVolumeRequest) error {
	if err := checkVolumeID(r.GetVolumeId()); err != nil {
		return err
	}
	if r.GetNodeId() == "" {
		return status.Error(codes.InvalidArgument, "node_id is required")
	}
	if strings.ContainsAny(r.GetNodeId(), "/\x00") || r.GetNodeId() == "." || r.GetNodeId() == ".." {
		return status.Errorf(codes.NotFound, "node_id %q is not a node of this driver", r.GetNodeId())
	}
	return checkCapability(r.GetVolumeCapability())
}

func validateControllerUnpublish(r *csi.ControllerUnpublishVolumeRequest) error {
	if err := checkVolumeID(r.GetVolumeId()); err != nil {
		return err
	}
	if strings.ContainsAny(r.GetNodeId(), "/\x00") {
		return status.Errorf(codes.NotFound, "node_id %q is not a node of this driver", r.GetNodeId())
	}
	return nil
}

func validateCreateVolume(r *csi.CreateVolumeRequest) error {
	if r.GetName() == "" {
		return status.Error(codes.InvalidArgument, "name is required")
	}
	if err := checkVolumeID(r.GetName()); err != nil {
		return status.Errorf(codes.InvalidArgument, "name %q cannot name a volume of this driver", r.GetName())
	}
	if len(r.GetVolumeCapabilities()) == 0 {
		return status.Error(codes.InvalidArgument, "volume_capabilities is required")
	}
	for _, c := range r.GetVolumeCapabilities() {
		if err := checkCapability(c); err != nil {
			return err
		}
		// One volume is a folder or a backing file, never both.
		if (c.GetBlock() == nil) != (r.GetVolumeCapabilities()[0].GetBlock() == nil) {
			return status.Error(codes.InvalidArgument, "volume_capabilities mix block and mount access types")
		}
	}
	if r.GetVolumeContentSource() != nil {
		return status.Error(codes.InvalidArgument, "volume_content_source is not supported")
	}
	return nil
}

func validateValidateCapabilities(r *csi.ValidateVolumeCapabilitiesRequest) error {
	if err := checkVolumeID(r.GetVolumeId()); err != nil {
		return err
	}
	if len(r.GetVolumeCapabilities()) == 0 {
		return status.Error(codes.InvalidArgument, "volume_capabilities is required")
	}
	return nil
}

// first is the first non-nil error.
func first(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// capacityFor is the size CreateVolume gives a block volume and NodeExpandVolume grows
// a volume to: the required bytes, else the limit.
func capacityFor(r *csi.CapacityRange) int64 {
	if r.GetRequiredBytes() > 0 {
		return r.GetRequiredBytes()
	}
	return r.GetLimitBytes()
}
