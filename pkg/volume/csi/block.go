package csi

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// Raw block volumes (volumeMode: Block), laid out as upstream's CSI block mapper lays them
// out under <root-dir>/plugins/kubernetes.io/csi/volumeDevices:
//
//	staging/<pv>             NodeStageVolume's staging path (a folder the kubelet makes)
//	publish/<pv>/<pod uid>   NodePublishVolume's target: a file the driver puts the device on
//	<pv>/dev/<pod uid>       the global map: the kubelet's bind of the published device
//	<pv>/data/vol_data.json  the driver and handle, for tear-down after a restart
//
// The pod's symlink (pods/<uid>/volumeDevices/kubernetes.io~csi/<pv>) and the global map
// are the caller's, common to every block plugin.
func (v *Volumes) blockDir(parts ...string) string {
	return filepath.Join(append([]string{v.cfg.RootDir, "plugins", "kubernetes.io", "csi", "volumeDevices"}, parts...)...)
}

// BlockGlobalMapPath is the folder of a block volume's global map (one file per pod).
func (v *Volumes) BlockGlobalMapPath(specName string) string { return v.blockDir(specName, "dev") }

// PublishBlock makes a block volume ready for pod: attachment waited for, staged (when the
// driver stages) and published to a file of its own. It returns the published device's
// path. Failures are named as upstream names them: SetUpDevice (staging), MapPodDevice
// (publishing).
func (v *Volumes) PublishBlock(ctx context.Context, pod *v1.Pod, vol Volume) (string, error) {
	info, err := v.driverInfo(ctx, vol.Driver)
	if err != nil {
		return "", &StepError{"SetUpDevice", err}
	}
	if err := checkLifecycle(info, false); err != nil {
		return "", &StepError{"SetUpDevice", err}
	}
	d, err := v.reg.Driver(vol.Driver)
	if err != nil {
		return "", &StepError{"SetUpDevice", fmt.Errorf("kubernetes.io/csi: blockMapper.SetUpDevice failed to get CSI client: %v", err)}
	}
	var publishCtx map[string]string
	if attachRequired(info) {
		if publishCtx, err = v.attachment(ctx, vol); err != nil {
			return "", err
		}
	}
	if err := saveVolData(v.blockDir(vol.SpecName, "data"), map[string]string{
		"specVolID": vol.SpecName, "volumeHandle": vol.Handle, "driverName": vol.Driver, "nodeName": v.cfg.NodeName,
		"attachmentID": AttachmentName(vol.Handle, vol.Driver, v.cfg.NodeName),
	}); err != nil {
		return "", &StepError{"SetUpDevice", err}
	}
	staging := ""
	if d.has(csipb.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME) {
		staging = v.blockDir("staging", vol.SpecName)
		if err := v.stageBlock(ctx, d, vol, staging, publishCtx); err != nil {
			return "", &StepError{"SetUpDevice", err}
		}
	}
	target := v.blockDir("publish", vol.SpecName, string(pod.UID))
	if err := v.publishBlock(ctx, d, pod, vol, info, staging, target, publishCtx); err != nil {
		return "", &StepError{"MapPodDevice", err}
	}
	return target, nil
}

func (v *Volumes) stageBlock(ctx context.Context, d *Driver, vol Volume, staging string, publishCtx map[string]string) error {
	if err := os.MkdirAll(staging, 0o750); err != nil {
		return fmt.Errorf("kubernetes.io/csi: blockMapper.stageVolumeForBlock failed to create dir %s: %v", staging, err)
	}
	return v.nodeStage(ctx, d, vol, staging, publishCtx)
}

// publishBlock asks the driver to put the device on target; as upstream, the kubelet makes
// target's folder and the driver the file itself. A device published already (after a
// restart of the kubelet) is asked for again: drivers answer that idempotently.
func (v *Volumes) publishBlock(ctx context.Context, d *Driver, pod *v1.Pod, vol Volume, info *storagev1.CSIDriver, staging, target string, publishCtx map[string]string) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return fmt.Errorf("kubernetes.io/csi: blockMapper.publishVolumeForBlock failed to create dir %s:  %v", filepath.Dir(target), err)
	}
	secrets, err := v.secrets(ctx, vol.PublishSecret)
	if err != nil {
		return err
	}
	cctx, cancel := v.cfg.callCtx(ctx)
	defer cancel()
	_, err = d.node.NodePublishVolume(cctx, &csipb.NodePublishVolumeRequest{
		VolumeId: vol.Handle, PublishContext: publishCtx, StagingTargetPath: staging, TargetPath: target,
		VolumeCapability: capability(vol), Readonly: vol.ReadOnly, Secrets: secrets, VolumeContext: publishAttributes(pod, vol, info),
	})
	return err
}

// UnpublishBlock undoes PublishBlock for one pod, after the caller removed its global
// map: the device unpublished, and unstaged when no other pod on the node still has it.
// A driver that is not registered leaves the volume (and the error) for the next try.
func (v *Volumes) UnpublishBlock(ctx context.Context, specName string, podUID types.UID) error {
	data, err := loadVolData(v.blockDir(specName, "data"))
	if os.IsNotExist(err) {
		return nil // never published
	}
	if err != nil {
		return err
	}
	d, err := v.reg.Driver(data["driverName"])
	if err != nil {
		return fmt.Errorf("kubernetes.io/csi: blockMapper.TearDownDevice failed to get CSI client: %v", err)
	}
	target := v.blockDir("publish", specName, string(podUID))
	if _, err := os.Lstat(target); err == nil {
		cctx, cancel := v.cfg.callCtx(ctx)
		_, err = d.node.NodeUnpublishVolume(cctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: data["volumeHandle"], TargetPath: target})
		cancel()
		if err != nil {
			return fmt.Errorf("kubernetes.io/csi: blockMapper.unpublishVolumeForBlock failed: %v", err)
		}
		if err := os.Remove(target); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	if left, _ := os.ReadDir(v.blockDir("publish", specName)); len(left) > 0 {
		return nil // another pod still has the device
	}
	if d.has(csipb.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME) {
		cctx, cancel := v.cfg.callCtx(ctx)
		defer cancel()
		_, err := d.node.NodeUnstageVolume(cctx, &csipb.NodeUnstageVolumeRequest{VolumeId: data["volumeHandle"], StagingTargetPath: v.blockDir("staging", specName)})
		if err != nil {
			return fmt.Errorf("kubernetes.io/csi: blockMapper.unstageVolumeForBlock failed: %v", err)
		}
		klog.FromContext(ctx).V(2).Info("Unstaged CSI block volume", "driver", data["driverName"], "handle", data["volumeHandle"])
	}
	err = errors.Join(os.RemoveAll(v.blockDir("staging", specName)), os.RemoveAll(v.blockDir("publish", specName)),
		os.RemoveAll(v.blockDir(specName)))
	for _, dir := range []string{v.blockDir("staging"), v.blockDir("publish")} {
		_ = os.Remove(dir) // once no volume is left in it
	}
	return err
}

// blockPublished lists the block volumes published to pods on this node.
func (v *Volumes) blockPublished() []published {
	dirs, _ := filepath.Glob(v.blockDir("publish", "*"))
	var out []published
	for _, dir := range dirs {
		if pods, _ := os.ReadDir(dir); len(pods) == 0 {
			continue
		}
		if data, err := loadVolData(v.blockDir(filepath.Base(dir), "data")); err == nil {
			out = append(out, published{data["driverName"], data["volumeHandle"], ""})
		}
	}
	return out
}
