package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-helpers/storage/ephemeral"
	storagehelpers "k8s.io/component-helpers/storage/volume"

	"github.com/minikubelet/minikubelet/pkg/volume/csi"
)

// pluginLocal is upstream's folder for local persistent volumes bound into a pod.
const pluginLocal = "kubernetes.io~local-volume"

// pvcProtectionFinalizer keeps a claim in use from going; a claim being deleted without it
// must not be started on (upstream's populator).
const pvcProtectionFinalizer = "kubernetes.io/pvc-protection"

// claimed is a pod volume backed by a persistent volume: the PV bound to its claim and
// whether the pod asked for it read-only.
type claimed struct {
	pv       *v1.PersistentVolume
	readOnly bool
	claim    string
	// block: a raw block volume (volumeMode: Block), mapped rather than mounted.
	block bool
}

// claimSource is the claim a volume refers to: a persistentVolumeClaim volume's, or the
// claim the ephemeral-volume controller makes for a generic ephemeral volume; nil for
// other volumes.
func claimSource(pod *v1.Pod, vol *v1.Volume) *v1.PersistentVolumeClaimVolumeSource {
	if vol.PersistentVolumeClaim != nil {
		return vol.PersistentVolumeClaim
	}
	if vol.Ephemeral != nil {
		return &v1.PersistentVolumeClaimVolumeSource{ClaimName: ephemeral.VolumeClaimName(pod, vol)}
	}
	return nil
}

// ClaimName names the claim a pod's volume uses (its own, or the one the ephemeral-volume
// controller makes for a generic ephemeral volume); false for other volumes.
func ClaimName(pod *v1.Pod, vol *v1.Volume) (string, bool) {
	if src := claimSource(pod, vol); src != nil {
		return src.ClaimName, true
	}
	return "", false
}

// resolveClaim finds the PV behind a claim volume with upstream's checks and wording
// (desired-state populator): the claim bound, not being deleted, owned by the pod for
// an ephemeral volume, the PV bound back to it, its volume mode matching the container's
// use.
func (m *Manager) resolveClaim(ctx context.Context, pod *v1.Pod, vol *v1.Volume, src *v1.PersistentVolumeClaimVolumeSource) (claimed, error) {
	wrap := func(err error) error {
		return fmt.Errorf("error processing PVC %s/%s: %v", pod.Namespace, src.ClaimName, err)
	}
	if m.cfg.Client == nil {
		return claimed{}, wrap(errors.New("this node runs standalone: no API server to read the claim from"))
	}
	pvc, err := m.cfg.Client.CoreV1().PersistentVolumeClaims(pod.Namespace).Get(ctx, src.ClaimName, metav1.GetOptions{})
	if err != nil {
		return claimed{}, wrap(fmt.Errorf("failed to fetch PVC from API server: %v", err))
	}
	switch {
	case pvc.DeletionTimestamp != nil && !slices.Contains(pvc.Finalizers, pvcProtectionFinalizer):
		return claimed{}, wrap(errors.New("PVC is being deleted"))
	case pvc.Status.Phase != v1.ClaimBound:
		return claimed{}, wrap(errors.New("PVC is not bound"))
	case pvc.Spec.VolumeName == "":
		return claimed{}, wrap(errors.New("PVC has empty pvc.Spec.VolumeName"))
	}
	if vol.Ephemeral != nil {
		if err := ephemeral.VolumeIsForPod(pod, pvc); err != nil {
			return claimed{}, err
		}
	}
	name := pvc.Spec.VolumeName
	pv, err := m.cfg.Client.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return claimed{}, wrap(fmt.Errorf("failed to fetch PV %s from API server: %v", name, err))
	}
	if pv.Spec.ClaimRef == nil {
		return claimed{}, wrap(fmt.Errorf("found PV object %s but it has a nil pv.Spec.ClaimRef indicating it is not yet bound to the claim", name))
	}
	if pv.Spec.ClaimRef.UID != pvc.UID {
		return claimed{}, wrap(fmt.Errorf("found PV object %s but its pv.Spec.ClaimRef.UID %s does not point to claim.UID %s", name, pv.Spec.ClaimRef.UID, pvc.UID))
	}
	mode := v1.PersistentVolumeFilesystem
	if pv.Spec.VolumeMode != nil {
		mode = *pv.Spec.VolumeMode
	}
	mounted, device := usedAs(pod, vol.Name)
	if mounted && mode != v1.PersistentVolumeFilesystem {
		return claimed{}, fmt.Errorf("volume %s has volumeMode %s, but is specified in volumeMounts", vol.Name, mode)
	}
	if device && mode != v1.PersistentVolumeBlock {
		return claimed{}, fmt.Errorf("volume %s has volumeMode %s, but is specified in volumeDevices", vol.Name, mode)
	}
	return claimed{pv: pv, readOnly: src.ReadOnly, claim: src.ClaimName, block: mode == v1.PersistentVolumeBlock}, nil
}

// usedAs reports whether any container (init, regular or ephemeral) mounts the volume or
// uses it as a raw block device.
func usedAs(pod *v1.Pod, name string) (mounted, device bool) {
	check := func(mounts []v1.VolumeMount, devices []v1.VolumeDevice) {
		for _, m := range mounts {
			mounted = mounted || m.Name == name
		}
		for _, d := range devices {
			device = device || d.Name == name
		}
	}
	for _, c := range pod.Spec.InitContainers {
		check(c.VolumeMounts, c.VolumeDevices)
	}
	for _, c := range pod.Spec.Containers {
		check(c.VolumeMounts, c.VolumeDevices)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		check(c.VolumeMounts, c.VolumeDevices)
	}
	return mounted, device
}

// setUpClaimed makes a resolved PV ready for the pod, each failure worded as upstream's
// operation generator words it for the PV (the volume is named by the PV, not the pod's
// volume): node affinity first, then the plugin's own set-up.
func (m *Manager) setUpClaimed(ctx context.Context, pod *v1.Pod, c claimed) (Mount, error) {
	if c.block {
		return m.setUpBlock(ctx, pod, c)
	}
	pv := c.pv
	fail := func(step string, err error) error { return stepFailed(step, pv.Name, err) }
	labels, err := m.nodeLabels()
	if err == nil {
		err = storagehelpers.CheckNodeAffinity(pv, labels)
	}
	if err != nil {
		return Mount{}, fail("NodeAffinity check", err)
	}
	readOnly := c.readOnly
	switch src := &pv.Spec.PersistentVolumeSource; {
	case src.HostPath != nil:
		if err := checkHostPath(src.HostPath); err != nil {
			return Mount{}, fail("SetUp", err)
		}
		// As upstream's hostPath plugin: the host's folder as it is, no fsGroup change.
		return Mount{HostPath: src.HostPath.Path, ReadOnly: readOnly}, nil
	case src.Local != nil:
		if err := localPathType(src.Local.Path); err != nil {
			return Mount{}, fail("NewMounter initialization", err)
		}
		dir := m.volumeDir(pod, pluginLocal, pv.Name)
		if err := bindMount(src.Local.Path, dir, readOnly); err != nil {
			return Mount{}, fail("SetUp", err)
		}
		if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil && !readOnly {
			if err := applyFSGroup(dir, *sc.FSGroup, sc.FSGroupChangePolicy); err != nil {
				return Mount{}, fail("SetUp", err)
			}
		}
		return Mount{HostPath: dir, ReadOnly: readOnly, stats: statsSource{statfs: true}}, nil
	case src.CSI != nil:
		s := src.CSI
		vol := csi.Volume{Driver: s.Driver, Handle: s.VolumeHandle, SpecName: pv.Name,
			Attributes: s.VolumeAttributes, FSType: s.FSType, MountOptions: pv.Spec.MountOptions, AccessModes: pv.Spec.AccessModes,
			ReadOnly: readOnly || s.ReadOnly, StageSecret: s.NodeStageSecretRef, PublishSecret: s.NodePublishSecretRef}
		mnt, err := m.setUpCSI(ctx, pod, vol)
		if err == nil && !readOnly { // as upstream, read-only claims are not expanded
			mnt.expand = &expandable{claim: c.claim, namespace: pod.Namespace, vol: vol, target: mnt.HostPath}
		}
		return mnt, err
	}
	return Mount{}, fail("SetUp", fmt.Errorf("persistent volume type %s is not supported by minikubelet", pvSourceType(pv)))
}

// setUpCSI publishes a CSI volume (a PV's or an inline one) into the pod's folder.
func (m *Manager) setUpCSI(ctx context.Context, pod *v1.Pod, vol csi.Volume) (Mount, error) {
	if m.cfg.CSI == nil {
		return Mount{}, stepFailed("SetUp", vol.SpecName, errors.New("CSI volumes are not supported on this node"))
	}
	target := csi.TargetPath(m.podVolumesDir(pod.UID), vol.SpecName)
	fsGroup, err := m.cfg.CSI.Publish(ctx, pod, vol, target)
	if errors.Is(err, csi.ErrNotAttached) {
		return Mount{}, fmt.Errorf("%w: volume %q", errWaiting, vol.SpecName)
	}
	var step *csi.StepError
	if errors.As(err, &step) {
		return Mount{}, stepFailed(step.Step, vol.SpecName, step.Err)
	}
	if err != nil {
		return Mount{}, stepFailed("SetUp", vol.SpecName, err)
	}
	if sc := pod.Spec.SecurityContext; fsGroup && sc != nil && sc.FSGroup != nil {
		if err := applyFSGroup(target, *sc.FSGroup, sc.FSGroupChangePolicy); err != nil {
			return Mount{}, stepFailed("SetUp", vol.SpecName, fmt.Errorf("applying fsGroup: %w", err))
		}
	}
	return Mount{HostPath: target, ReadOnly: vol.ReadOnly, stats: statsSource{driver: vol.Driver, handle: vol.Handle}}, nil
}

// stepError is a volume's set-up failure worded as upstream's operation generator words
// it: MountVolume.<step> failed for volume "<name>" : <why> (MapVolume for a raw block
// volume). name is the PV's name for a claim's volume.
type stepError struct {
	op, step, name string
	err            error
}

func stepFailed(step, name string, err error) error {
	return &stepError{"MountVolume", step, name, err}
}

func mapFailed(step, name string, err error) error { return &stepError{"MapVolume", step, name, err} }

func (e *stepError) Error() string {
	return fmt.Sprintf("%s.%s failed for volume %q : %v", e.op, e.step, e.name, e.err)
}

// EventReason is the reason of the event upstream records when SetUp fails with err:
// FailedMapVolume for a raw block volume (but FailedMount for its node affinity, as
// upstream), FailedMount otherwise.
func EventReason(err error) string {
	var se *stepError
	if errors.As(err, &se) && se.op == "MapVolume" && se.step != "NodeAffinity check" {
		return "FailedMapVolume"
	}
	return "FailedMount"
}

func (e *stepError) Unwrap() error { return e.err }

// errWaiting marks a volume that is waiting for something outside the node (its
// attachment): upstream waits for that without an event.
var errWaiting = errors.New("waiting for the volume to be attached")

// IsWaiting reports whether SetUp failed only because a volume is not attached yet.
func IsWaiting(err error) bool { return errors.Is(err, errWaiting) }

func (m *Manager) nodeLabels() (map[string]string, error) {
	if m.cfg.Node == nil {
		return nil, nil
	}
	n, err := m.cfg.Node()
	if err != nil {
		return nil, err
	}
	return n.Labels, nil
}

// localPathType accepts what upstream's local plugin mounts: a directory (a block device
// would be formatted and mounted, which minikubelet does not do).
func localPathType(p string) error {
	fi, err := os.Stat(p)
	if os.IsNotExist(err) {
		return fmt.Errorf("path %q does not exist", p)
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0 {
		return errors.New("local block devices are not supported by minikubelet")
	}
	if !fi.IsDir() {
		return errors.New("only directory and block device are supported")
	}
	return nil
}

// pvSourceType names the PV's source as the API spells it (e.g. csi, nfs).
func pvSourceType(pv *v1.PersistentVolume) string {
	return sourceKey(&pv.Spec.PersistentVolumeSource)
}

// claimsError is upstream's kubelet event when volumes could not be processed (their claims
// or PVs not usable yet): what is still unmounted, what is unattached (nothing here: no
// attachable plugin), what failed and why.
func claimsError(unmounted, failed, reasons []string) error {
	sort.Strings(unmounted)
	sort.Strings(failed)
	return fmt.Errorf("Unable to attach or mount volumes: unmounted volumes=[%s], unattached volumes=[], failed to process volumes=[%s]: %s",
		strings.Join(unmounted, " "), strings.Join(failed, " "), strings.Join(reasons, "; "))
}
