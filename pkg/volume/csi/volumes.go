package csi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/moby/sys/mountinfo"
	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
)

// Volumes stages and publishes the pods' CSI volumes through the registered drivers, and
// unpublishes, measures and expands them.
type Volumes struct {
	reg *Registry
	cfg Config
}

// NewVolumes returns the volumes side of reg's drivers.
func NewVolumes(reg *Registry) *Volumes { return &Volumes{reg: reg, cfg: reg.cfg} }

// PluginDir is upstream's folder name of CSI volumes in a pod's volumes folder.
const PluginDir = "kubernetes.io~csi"

const volDataFile = "vol_data.json"

// Volume is one CSI volume of a pod: a PV's CSI source, or an inline (ephemeral) one.
type Volume struct {
	Driver string
	Handle string
	// SpecName names the volume on the node: the PV's name, or the pod's volume name for
	// an inline volume.
	SpecName     string
	Attributes   map[string]string
	FSType       string
	MountOptions []string
	// AccessModes are the PV's (none for an inline volume); the first is the one the
	// driver is asked for, as upstream.
	AccessModes []v1.PersistentVolumeAccessMode
	ReadOnly    bool
	Ephemeral   bool
	// Block: the pod uses the volume as a raw block device (volumeMode: Block).
	Block bool
	// StageSecret and PublishSecret name the secrets the driver gets, if any.
	StageSecret, PublishSecret *v1.SecretReference
}

// StepError is a failed step of setting a volume up, named as upstream's operation
// generator names it (MountDevice for staging, SetUp for publishing).
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// ErrNotAttached: the volume is not attached to the node yet. Upstream waits for that
// without an event; so does the caller.
var ErrNotAttached = errors.New("volume is not attached to the node yet")

// InlineHandle is upstream's volume handle of an inline ephemeral volume.
func InlineHandle(podUID, volName string) string {
	return fmt.Sprintf("csi-%x", sha256.Sum256([]byte(podUID+volName)))
}

// AttachmentName is upstream's VolumeAttachment name for a volume on a node.
func AttachmentName(handle, driver, node string) string {
	return fmt.Sprintf("csi-%x", sha256.Sum256([]byte(handle+driver+node)))
}

// stagingPath is upstream's global mount of a volume on the node.
func (v *Volumes) stagingPath(driver, handle string) string {
	return filepath.Join(v.cfg.RootDir, "plugins", "kubernetes.io", "csi", driver, fmt.Sprintf("%x", sha256.Sum256([]byte(handle))), "globalmount")
}

// TargetPath is where a pod's CSI volume is published.
func TargetPath(podVolumesDir, specName string) string {
	return filepath.Join(podVolumesDir, PluginDir, specName, "mount")
}

// Publish makes vol ready for pod at target (upstream's path, see TargetPath): the
// attachment waited for when the driver needs one, the volume staged when the driver
// stages, then published. A target that is already mounted (after a restart) is kept.
// fsGroup says whether the kubelet is to give the pod's fsGroup to the files (the
// CSIDriver's fsGroupPolicy, as upstream's supportsFSGroup).
func (v *Volumes) Publish(ctx context.Context, pod *v1.Pod, vol Volume, target string) (fsGroup bool, err error) {
	if mounted, _ := mountinfo.Mounted(target); mounted {
		// Published before a restart of the kubelet: as upstream reconstructs it, the
		// volume is in place, whether or not its driver has registered again yet.
		return false, nil
	}
	info, err := v.driverInfo(ctx, vol.Driver)
	if err != nil {
		return false, &StepError{"SetUp", err}
	}
	if err := checkLifecycle(info, vol.Ephemeral); err != nil {
		return false, &StepError{"SetUp", err}
	}
	return fsGroupApplies(info, vol), v.publishAll(ctx, pod, vol, info, target)
}

// fsGroupApplies: File always; ReadWriteOnceWithFSType (the default) for a volume with a
// filesystem type that is inline or only ReadWriteOnce; None never; read-only never.
func fsGroupApplies(info *storagev1.CSIDriver, vol Volume) bool {
	policy := storagev1.ReadWriteOnceWithFSTypeFSGroupPolicy
	if info != nil && info.Spec.FSGroupPolicy != nil {
		policy = *info.Spec.FSGroupPolicy
	}
	switch {
	case vol.ReadOnly || policy == storagev1.NoneFSGroupPolicy:
		return false
	case policy == storagev1.FileFSGroupPolicy:
		return true
	}
	return vol.FSType != "" && (vol.Ephemeral || len(vol.AccessModes) == 1 && vol.AccessModes[0] == v1.ReadWriteOnce)
}

func (v *Volumes) publishAll(ctx context.Context, pod *v1.Pod, vol Volume, info *storagev1.CSIDriver, target string) error {
	d, err := v.reg.Driver(vol.Driver)
	if err != nil {
		step, verb := "SetUp", "mounter.SetUpAt failed to get CSI client"
		if !vol.Ephemeral {
			step, verb = "MountDevice", "attacher.MountDevice failed to create newCsiDriverClient"
		}
		return &StepError{step, fmt.Errorf("kubernetes.io/csi: %s: %v", verb, err)}
	}
	var publishCtx map[string]string
	if !vol.Ephemeral && attachRequired(info) {
		if publishCtx, err = v.attachment(ctx, vol); err != nil {
			return err
		}
	}
	staging := ""
	if !vol.Ephemeral && d.has(csipb.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME) {
		staging = v.stagingPath(vol.Driver, vol.Handle)
		if err := v.stage(ctx, d, vol, staging, publishCtx); err != nil {
			return &StepError{"MountDevice", err}
		}
	}
	if err := v.publish(ctx, d, pod, vol, info, staging, target, publishCtx); err != nil {
		return &StepError{"SetUp", err}
	}
	return nil
}

// driverInfo is the driver's CSIDriver object; nil when there is none (upstream's defaults
// then apply: attach required, no pod info, persistent volumes only).
func (v *Volumes) driverInfo(ctx context.Context, name string) (*storagev1.CSIDriver, error) {
	if v.cfg.Client == nil {
		return nil, nil
	}
	cd, err := v.cfg.Client.StorageV1().CSIDrivers().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return cd, err
}

func attachRequired(cd *storagev1.CSIDriver) bool {
	return cd == nil || cd.Spec.AttachRequired == nil || *cd.Spec.AttachRequired
}

// checkLifecycle refuses a volume the driver does not serve in that mode, as upstream's
// supportsVolumeLifecycleMode.
func checkLifecycle(cd *storagev1.CSIDriver, ephemeral bool) error {
	want := storagev1.VolumeLifecyclePersistent
	if ephemeral {
		want = storagev1.VolumeLifecycleEphemeral
	}
	modes := []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent}
	if cd != nil && len(cd.Spec.VolumeLifecycleModes) > 0 {
		modes = cd.Spec.VolumeLifecycleModes
	}
	for _, m := range modes {
		if m == want {
			return nil
		}
	}
	name := "<none>"
	if cd != nil {
		name = cd.Name
	}
	return fmt.Errorf("kubernetes.io/csi: mounter.SetupAt failed to check volume lifecycle mode: volume mode %q not supported by driver %s (only supports %q)", want, name, modes)
}

// attachment waits (by failing with ErrNotAttached) for the VolumeAttachment the
// attach/detach controller makes and the driver's attacher marks attached, and returns
// its publish context.
func (v *Volumes) attachment(ctx context.Context, vol Volume) (map[string]string, error) {
	name := AttachmentName(vol.Handle, vol.Driver, v.cfg.NodeName)
	va, err := v.cfg.Client.StorageV1().VolumeAttachments().Get(ctx, name, metav1.GetOptions{})
	// The node authorizer lets a node read an attachment only once it names the node:
	// before that the answer is Forbidden, which means the same as NotFound here.
	if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
		return nil, ErrNotAttached
	}
	if err != nil {
		return nil, &StepError{"WaitForAttach", err}
	}
	if va.Status.AttachError != nil {
		return nil, &StepError{"WaitForAttach", errors.New(va.Status.AttachError.Message)}
	}
	if !va.Status.Attached {
		return nil, ErrNotAttached
	}
	return va.Status.AttachmentMetadata, nil
}

func (v *Volumes) stage(ctx context.Context, d *Driver, vol Volume, staging string, publishCtx map[string]string) error {
	if mounted, _ := mountinfo.Mounted(staging); mounted {
		return nil
	}
	if err := os.MkdirAll(staging, 0o750); err != nil {
		return fmt.Errorf("kubernetes.io/csi: attacher.MountDevice failed to create dir %q:  %v", staging, err)
	}
	if err := saveVolData(filepath.Dir(staging), map[string]string{"volumeHandle": vol.Handle, "driverName": vol.Driver}); err != nil {
		return err
	}
	return v.nodeStage(ctx, d, vol, staging, publishCtx)
}

// nodeStage asks the driver to stage vol at staging, with its stage secret.
func (v *Volumes) nodeStage(ctx context.Context, d *Driver, vol Volume, staging string, publishCtx map[string]string) error {
	secrets, err := v.secrets(ctx, vol.StageSecret)
	if err != nil {
		return err
	}
	cctx, cancel := v.cfg.callCtx(ctx)
	defer cancel()
	_, err = d.node.NodeStageVolume(cctx, &csipb.NodeStageVolumeRequest{
		VolumeId: vol.Handle, PublishContext: publishCtx, StagingTargetPath: staging,
		VolumeCapability: capability(vol), Secrets: secrets, VolumeContext: vol.Attributes,
	})
	return err
}

func (v *Volumes) publish(ctx context.Context, d *Driver, pod *v1.Pod, vol Volume, info *storagev1.CSIDriver, staging, target string, publishCtx map[string]string) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return fmt.Errorf("kubernetes.io/csi: mounter.SetUpAt failed to create dir %q:  %v", filepath.Dir(target), err)
	}
	secrets, err := v.secrets(ctx, vol.PublishSecret)
	if err != nil {
		return err
	}
	attrs := publishAttributes(pod, vol, info)
	mode := storagev1.VolumeLifecyclePersistent
	if vol.Ephemeral {
		mode = storagev1.VolumeLifecycleEphemeral
	}
	if err := saveVolData(filepath.Dir(target), map[string]string{
		"specVolID": vol.SpecName, "volumeHandle": vol.Handle, "driverName": vol.Driver, "nodeName": v.cfg.NodeName,
		"volumeLifecycleMode": string(mode), "attachmentID": AttachmentName(vol.Handle, vol.Driver, v.cfg.NodeName),
	}); err != nil {
		return err
	}
	cctx, cancel := v.cfg.callCtx(ctx)
	defer cancel()
	_, err = d.node.NodePublishVolume(cctx, &csipb.NodePublishVolumeRequest{
		VolumeId: vol.Handle, PublishContext: publishCtx, StagingTargetPath: staging, TargetPath: target,
		VolumeCapability: capability(vol), Readonly: vol.ReadOnly, Secrets: secrets, VolumeContext: attrs,
	})
	if err != nil {
		// As upstream after a final error: nothing was published, forget the folder.
		_ = os.RemoveAll(filepath.Dir(target))
	}
	return err
}

// publishAttributes are the volume's attributes, with the pod's keys when the driver asks
// for them (podInfoOnMount).
func publishAttributes(pod *v1.Pod, vol Volume, info *storagev1.CSIDriver) map[string]string {
	attrs := map[string]string{}
	for k, val := range vol.Attributes {
		attrs[k] = val
	}
	if info != nil && info.Spec.PodInfoOnMount != nil && *info.Spec.PodInfoOnMount {
		attrs["csi.storage.k8s.io/pod.name"] = pod.Name
		attrs["csi.storage.k8s.io/pod.namespace"] = pod.Namespace
		attrs["csi.storage.k8s.io/pod.uid"] = string(pod.UID)
		attrs["csi.storage.k8s.io/serviceAccount.name"] = pod.Spec.ServiceAccountName
		attrs["csi.storage.k8s.io/ephemeral"] = strconv.FormatBool(vol.Ephemeral)
	}
	return attrs
}

// capability is the volume's CSI capability: a raw block device, or a mount with the PV's
// filesystem type and mount options; the access mode mapped as upstream maps it.
func capability(vol Volume) *csipb.VolumeCapability {
	mode := csipb.VolumeCapability_AccessMode_SINGLE_NODE_WRITER
	first := v1.ReadWriteOnce
	if len(vol.AccessModes) > 0 {
		first = vol.AccessModes[0]
	}
	switch first {
	case v1.ReadOnlyMany:
		mode = csipb.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY
	case v1.ReadWriteMany:
		mode = csipb.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER
	case v1.ReadWriteOncePod:
		mode = csipb.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER
	}
	c := &csipb.VolumeCapability{AccessMode: &csipb.VolumeCapability_AccessMode{Mode: mode}}
	if vol.Block {
		c.AccessType = &csipb.VolumeCapability_Block{Block: &csipb.VolumeCapability_BlockVolume{}}
	} else {
		c.AccessType = &csipb.VolumeCapability_Mount{Mount: &csipb.VolumeCapability_MountVolume{FsType: vol.FSType, MountFlags: vol.MountOptions}}
	}
	return c
}

// secrets reads the secret a driver call needs, as upstream's getCredentialsFromSecret.
func (v *Volumes) secrets(ctx context.Context, ref *v1.SecretReference) (map[string]string, error) {
	if ref == nil {
		return nil, nil
	}
	if v.cfg.Client == nil {
		return nil, errNoClient
	}
	s, err := v.cfg.Client.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("failed to find the secret %s in the namespace %s with error: %v", ref.Name, ref.Namespace, err)
	}
	out := make(map[string]string, len(s.Data))
	for k, val := range s.Data {
		out[k] = string(val)
	}
	return out, nil
}

func saveVolData(dir string, data map[string]string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, volDataFile), b, 0o640); err != nil {
		return fmt.Errorf("kubernetes.io/csi: failed to save volume info data: %v", err)
	}
	return nil
}

func loadVolData(dir string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, volDataFile))
	if err != nil {
		return nil, err
	}
	data := map[string]string{}
	return data, json.Unmarshal(b, &data)
}

// UnpublishPod unpublishes every CSI volume in the pod's volumes folder (read back from
// the vol_data.json files, so it works after a restart too) and unstages those no other
// pod on the node still publishes. A driver that is not registered leaves its volumes
// (and the error) for the next try.
func (v *Volumes) UnpublishPod(ctx context.Context, podVolumesDir string) error {
	dirs, _ := filepath.Glob(filepath.Join(podVolumesDir, PluginDir, "*"))
	var errs []error
	for _, dir := range dirs {
		if err := v.unpublish(ctx, dir); err != nil {
			errs = append(errs, fmt.Errorf("UnmountVolume.TearDown failed for volume %q : %w", filepath.Base(dir), err))
		}
	}
	return errors.Join(errs...)
}

func (v *Volumes) unpublish(ctx context.Context, dir string) error {
	data, err := loadVolData(dir)
	if os.IsNotExist(err) {
		return os.RemoveAll(dir) // never published
	}
	if err != nil {
		return err
	}
	d, err := v.reg.Driver(data["driverName"])
	if err != nil {
		return fmt.Errorf("kubernetes.io/csi: mounter.TearDownAt failed to get CSI client: %v", err)
	}
	target := filepath.Join(dir, "mount")
	cctx, cancel := v.cfg.callCtx(ctx)
	_, err = d.node.NodeUnpublishVolume(cctx, &csipb.NodeUnpublishVolumeRequest{VolumeId: data["volumeHandle"], TargetPath: target})
	cancel()
	if err != nil {
		return err
	}
	if mounted, _ := mountinfo.Mounted(target); mounted {
		return fmt.Errorf("kubernetes.io/csi: %s is still mounted after NodeUnpublishVolume", target)
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if data["volumeLifecycleMode"] == string(storagev1.VolumeLifecycleEphemeral) || !d.has(csipb.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME) {
		return nil
	}
	return v.unstageUnlessUsed(ctx, d, data["driverName"], data["volumeHandle"])
}

// unstageUnlessUsed unstages the volume when no pod on the node publishes it any more.
func (v *Volumes) unstageUnlessUsed(ctx context.Context, d *Driver, driver, handle string) error {
	for _, p := range v.published() {
		if p.driver == driver && p.handle == handle {
			return nil
		}
	}
	staging := v.stagingPath(driver, handle)
	if _, err := os.Stat(filepath.Dir(staging)); os.IsNotExist(err) {
		return nil
	}
	cctx, cancel := v.cfg.callCtx(ctx)
	defer cancel()
	if _, err := d.node.NodeUnstageVolume(cctx, &csipb.NodeUnstageVolumeRequest{VolumeId: handle, StagingTargetPath: staging}); err != nil {
		return fmt.Errorf("UnmountDevice failed: %w", err)
	}
	klog.FromContext(ctx).V(2).Info("Unstaged CSI volume", "driver", driver, "handle", handle)
	return os.RemoveAll(filepath.Dir(staging))
}

type published struct{ driver, handle, mode string }

// published lists the CSI volumes published into pods on this node (block volumes too),
// from their vol_data.json files.
func (v *Volumes) published() []published {
	files, _ := filepath.Glob(filepath.Join(v.cfg.RootDir, "pods", "*", "volumes", PluginDir, "*", volDataFile))
	out := make([]published, 0, len(files))
	for _, f := range files {
		if data, err := loadVolData(filepath.Dir(f)); err == nil {
			out = append(out, published{data["driverName"], data["volumeHandle"], data["volumeLifecycleMode"]})
		}
	}
	return append(out, v.blockPublished()...)
}

// InUse is the node's status.volumesInUse: the persistent CSI volumes published into pods,
// named as upstream names them (kubernetes.io/csi/<driver>^<handle>).
func (v *Volumes) InUse() []v1.UniqueVolumeName {
	seen := map[v1.UniqueVolumeName]bool{}
	var out []v1.UniqueVolumeName
	for _, p := range v.published() {
		if p.mode == string(storagev1.VolumeLifecycleEphemeral) {
			continue
		}
		n := v1.UniqueVolumeName("kubernetes.io/csi/" + p.driver + "^" + p.handle)
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// VolumeStats asks the driver for a published volume's usage (NodeGetVolumeStats);
// ok is false when the driver does not report it.
func (v *Volumes) VolumeStats(ctx context.Context, driver, handle, target string) (u Usage, ok bool, err error) {
	d, err := v.reg.Driver(driver)
	if err != nil || !d.has(csipb.NodeServiceCapability_RPC_GET_VOLUME_STATS) {
		return Usage{}, false, err
	}
	cctx, cancel := v.cfg.callCtx(ctx)
	defer cancel()
	resp, err := d.node.NodeGetVolumeStats(cctx, &csipb.NodeGetVolumeStatsRequest{VolumeId: handle, VolumePath: target})
	if err != nil {
		return Usage{}, false, err
	}
	for _, e := range resp.Usage {
		switch e.Unit {
		case csipb.VolumeUsage_BYTES:
			u.Bytes = Counts{Total: e.Total, Available: e.Available, Used: e.Used}
		case csipb.VolumeUsage_INODES:
			u.Inodes = Counts{Total: e.Total, Available: e.Available, Used: e.Used}
		}
	}
	return u, true, nil
}

// Usage is a volume's bytes and inodes as the driver counts them.
type Usage struct{ Bytes, Inodes Counts }

// Counts are one unit's total, available and used.
type Counts struct{ Total, Available, Used int64 }

// Expand asks the driver to grow a published volume's filesystem to size bytes
// (NodeExpandVolume); a driver without the node expansion capability needs nothing done
// on the node, as upstream treats it.
func (v *Volumes) Expand(ctx context.Context, vol Volume, target string, size int64) error {
	d, err := v.reg.Driver(vol.Driver)
	if err != nil {
		return err
	}
	if !d.has(csipb.NodeServiceCapability_RPC_EXPAND_VOLUME) {
		return nil
	}
	staging := ""
	if d.has(csipb.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME) {
		staging = v.stagingPath(vol.Driver, vol.Handle)
	}
	cctx, cancel := v.cfg.callCtx(ctx)
	defer cancel()
	_, err = d.node.NodeExpandVolume(cctx, &csipb.NodeExpandVolumeRequest{VolumeId: vol.Handle, VolumePath: target,
		CapacityRange: &csipb.CapacityRange{RequiredBytes: size}, StagingTargetPath: staging, VolumeCapability: capability(vol)})
	return err
}
