package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	storagehelpers "k8s.io/component-helpers/storage/volume"

	"github.com/minikubelet/minikubelet/pkg/volume/csi"
)

// Raw block volumes (volumeMode: Block, used in volumeDevices), mapped as upstream's block
// volume mapper maps them: the plugin finds the device (a local PV's path; for CSI, the
// file the driver published it on), the kubelet bind-mounts it onto a file of the global
// map (<global map>/<pod uid>) and links it from the pod's folder
// (pods/<uid>/volumeDevices/<plugin>/<pv>); the runtime gets the link. Upstream also holds
// the device open with a loop device; minikubelet does not (docs/differences.md).

const devicesDir = "volumeDevices"

// setUpBlock maps a claim's raw block PV for the pod, each failure worded as upstream's
// GenerateMapVolumeFunc words it.
func (m *Manager) setUpBlock(ctx context.Context, pod *v1.Pod, c claimed) (Mount, error) {
	pv := c.pv
	labels, err := m.nodeLabels()
	if err == nil {
		err = storagehelpers.CheckNodeAffinity(pv, labels)
	}
	if err != nil {
		return Mount{}, mapFailed("NodeAffinity check", pv.Name, err)
	}
	var device, global, plugin string
	switch src := &pv.Spec.PersistentVolumeSource; {
	case src.Local != nil:
		device, plugin = src.Local.Path, pluginLocal
		global = filepath.Join(m.cfg.RootDir, "plugins", pluginLocal, devicesDir, pv.Name)
	case src.CSI != nil && m.cfg.CSI != nil:
		s := src.CSI
		vol := csi.Volume{Driver: s.Driver, Handle: s.VolumeHandle, SpecName: pv.Name, Attributes: s.VolumeAttributes,
			AccessModes: pv.Spec.AccessModes, ReadOnly: c.readOnly || s.ReadOnly, Block: true,
			StageSecret: s.NodeStageSecretRef, PublishSecret: s.NodePublishSecretRef}
		device, err = m.cfg.CSI.PublishBlock(ctx, pod, vol)
		if errors.Is(err, csi.ErrNotAttached) {
			return Mount{}, fmt.Errorf("%w: volume %q", errWaiting, pv.Name)
		}
		var step *csi.StepError
		if errors.As(err, &step) {
			return Mount{}, mapFailed(step.Step, pv.Name, step.Err)
		}
		if err != nil {
			return Mount{}, mapFailed("MapPodDevice", pv.Name, err)
		}
		plugin, global = csi.PluginDir, m.cfg.CSI.BlockGlobalMapPath(pv.Name)
	default:
		// Upstream finds no block volume mapper for other plugins (hostPath among them).
		return Mount{}, mapFailed("FindMapperPluginBySpec", pv.Name,
			fmt.Errorf("no block volume plugin for persistent volume type %s", pvSourceType(pv)))
	}
	link, err := mapBlock(device, global, filepath.Join(m.PodDir(pod.UID), devicesDir, plugin), pv.Name, pod.UID)
	if err != nil {
		return Mount{}, mapFailed("MapBlockVolume", pv.Name, err)
	}
	for _, where := range []string{fmt.Sprintf("globalMapPath %q", global), fmt.Sprintf("volumeMapPath %q", filepath.Dir(link))} {
		m.event(pod, v1.EventTypeNormal, "SuccessfulMountVolume", fmt.Sprintf("MapVolume.MapPodDevice succeeded for volume %q %s", pv.Name, where))
	}
	return Mount{HostPath: link, ReadOnly: c.readOnly, Device: true}, nil
}

// mapBlock binds device onto <global>/<pod uid> and links it from <podDir>/<name>,
// returning the link. A device path that is not a block device is refused (upstream's
// bind of it would fail later, in the runtime).
func mapBlock(device, global, podDir, name string, uid types.UID) (string, error) {
	// As upstream, the link names the device itself, not a link to it (/dev/disk/by-id/...).
	if real, err := filepath.EvalSymlinks(device); err == nil {
		device = real
	}
	fi, err := os.Stat(device)
	if err == nil && (fi.Mode()&os.ModeDevice == 0 || fi.Mode()&os.ModeCharDevice != 0) {
		err = fmt.Errorf("%s is not a block device", device)
	}
	if err != nil {
		return "", fmt.Errorf("blkUtil.MapDevice failed. devicePath: %s, globalMapPath:%s, podUID: %s, bindMount: true: %v", device, global, uid, err)
	}
	if err := bindDevice(device, filepath.Join(global, string(uid))); err != nil {
		return "", fmt.Errorf("blkUtil.MapDevice failed. devicePath: %s, globalMapPath:%s, podUID: %s, bindMount: true: %v", device, global, uid, err)
	}
	if err := os.MkdirAll(podDir, 0o750); err != nil {
		return "", err
	}
	link := filepath.Join(podDir, name)
	// A link left by an earlier run may point at a device that changed: make it anew.
	if err := os.Remove(link); err != nil && !os.IsNotExist(err) {
		return "", err
	}
	if err := os.Symlink(device, link); err != nil {
		return "", fmt.Errorf("blkUtil.MapDevice failed. devicePath: %s, podVolumeMapPath:%s, volumeMapName: %s, bindMount: false: %v", device, podDir, name, err)
	}
	return link, nil
}

// bindDevice bind-mounts device onto the file at p (made if missing) unless it is bound
// already.
func bindDevice(device, p string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return err
	}
	if mounted, err := mountinfo.Mounted(p); err == nil && mounted {
		return nil
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o750)
	if err != nil {
		return err
	}
	_ = f.Close()
	if err := unix.Mount(device, p, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("failed to bind mount devicePath: %s to linkPath %s: %w", device, p, err)
	}
	return nil
}

// unmapAll undoes every block volume mapped for the pod (found from its links, so this
// works after a restart too): the global map's bind, the driver's publication for CSI,
// then the link. A failure leaves the link, and the rest, for the next try.
func (m *Manager) unmapAll(ctx context.Context, uid types.UID) error {
	links, _ := filepath.Glob(filepath.Join(m.PodDir(uid), devicesDir, "*", "*"))
	var errs []error
	for _, link := range links {
		name, plugin := filepath.Base(link), filepath.Base(filepath.Dir(link))
		global := filepath.Join(m.cfg.RootDir, "plugins", pluginLocal, devicesDir, name)
		if plugin == csi.PluginDir && m.cfg.CSI != nil {
			global = m.cfg.CSI.BlockGlobalMapPath(name)
		}
		err := unbindDevice(filepath.Join(global, string(uid)))
		if err == nil && plugin == csi.PluginDir && m.cfg.CSI != nil {
			err = m.cfg.CSI.UnpublishBlock(ctx, name, uid)
		}
		if err == nil {
			err = os.Remove(link)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("UnmapVolume.UnmapDevice failed for volume %q : %w", name, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return os.RemoveAll(filepath.Join(m.PodDir(uid), devicesDir))
}

// unbindDevice unmounts and removes one pod's file of a global map, and the map's folder
// once it is empty.
func unbindDevice(p string) error {
	if mounted, err := mountinfo.Mounted(p); err == nil && mounted {
		if err := unix.Unmount(p, 0); err != nil {
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return err
	}
	_ = os.Remove(filepath.Dir(p)) // only once empty
	return nil
}
