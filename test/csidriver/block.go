package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Raw block volumes (access type Block): a sparse backing file volumes/<handle>.img,
// attached to a loop device by NodeStageVolume and bind-mounted from /dev onto the
// target file by NodePublishVolume. block/<handle> names the loop device of a staged
// volume; losetup -j on the backing file is the truth it is checked against, since a
// reboot frees loop devices and may give the recorded name to another file.
//
// A read-only publish is a read-only bind, as for folders; the kernel does not refuse
// writes through a device node on a read-only mount, so a pod's device is read-only by
// its runtime's device permissions, not by the driver.

// DefaultBlockSize is the size of a block volume created without a capacity, and of the
// backing file NodeStageVolume makes for a handle with no BlockSizeKey (a static PV).
const DefaultBlockSize = 16 << 20

// createBlock makes the backing file and puts its size in the volume context: the bed's
// controller keeps its state apart from the nodes', so a node's NodeStageVolume makes
// the file it attaches, of that size.
func (d *driver) createBlock(r *csi.CreateVolumeRequest) (int64, map[string]string, error) {
	size := capacityFor(r.GetCapacityRange())
	if size <= 0 {
		size = DefaultBlockSize
	}
	size, err := growImage(d.imagePath(r.GetName()), size)
	if err != nil {
		return 0, nil, err
	}
	vc := maps.Clone(r.GetParameters())
	if vc == nil {
		vc = map[string]string{}
	}
	vc[BlockSizeKey] = strconv.FormatInt(size, 10)
	return size, vc, nil
}

func (d *driver) imagePath(id string) string { return d.dataDir(id) + ".img" }
func (d *driver) loopState(id string) string { return filepath.Join(d.stateDir, "block", id) }

func isBlock(c *csi.VolumeCapability) bool { return c.GetBlock() != nil }

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// kindConflict is an error (with code c) when the handle is already the other kind of
// volume: a data folder cannot be staged as a block device, nor an image as a folder.
func (d *driver) kindConflict(id string, block bool, c codes.Code) error {
	other, kind := d.imagePath(id), "block"
	if block {
		other, kind = d.dataDir(id), "mount"
	}
	if exists(other) {
		return status.Errorf(c, "volume %s is a %s volume", id, kind)
	}
	return nil
}

// growImage makes the backing file at least size bytes, sparse, and returns its size: it
// is made if missing and never shrunk (that would cut the volume's data).
func growImage(img string, size int64) (int64, error) {
	f, err := os.OpenFile(img, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Size() >= size {
		return fi.Size(), nil
	}
	return size, f.Truncate(size)
}

// losetupBin is util-linux's losetup: the usual path first, since the driver may run with
// a bare PATH.
func losetupBin() string {
	if fi, err := os.Stat("/usr/sbin/losetup"); err == nil && fi.Mode()&0o111 != 0 {
		return "/usr/sbin/losetup"
	}
	return "losetup"
}

func losetup(ctx context.Context, args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, losetupBin(), args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("losetup %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return strings.TrimSpace(string(out)), nil
}

// loopsOf lists the loop devices backed by img ("/dev/loop3: [2049]:123 (/path)" lines).
func loopsOf(ctx context.Context, img string) ([]string, error) {
	if !exists(img) {
		return nil, nil
	}
	out, err := losetup(ctx, "-j", img)
	if err != nil {
		return nil, err
	}
	var devs []string
	for line := range strings.Lines(out) {
		if dev, _, ok := strings.Cut(line, ":"); ok {
			devs = append(devs, dev)
		}
	}
	return devs, nil
}

// stagedLoop is the recorded loop device of a staged block volume, "" if it is not staged
// or the record is stale.
func (d *driver) stagedLoop(ctx context.Context, id string) (string, error) {
	b, err := os.ReadFile(d.loopState(id))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	devs, err := loopsOf(ctx, d.imagePath(id))
	if err != nil {
		return "", err
	}
	if loop := strings.TrimSpace(string(b)); slices.Contains(devs, loop) {
		return loop, nil
	}
	return "", nil
}

// stageBlock attaches the volume's backing file (made if missing) to a loop device, or
// reuses its attachment, and records the device.
func (d *driver) stageBlock(ctx context.Context, id string, size int64) error {
	if loop, err := d.stagedLoop(ctx, id); err != nil || loop != "" {
		if loop != "" {
			note(ctx, "already staged")
		}
		return err
	}
	img := d.imagePath(id)
	if !exists(img) {
		if _, err := growImage(img, size); err != nil {
			return err
		}
		note(ctx, "backing file created")
	}
	devs, err := loopsOf(ctx, img)
	if err != nil {
		return err
	}
	var loop string
	if len(devs) > 0 { // attached before the record was written, or before a restart
		loop = devs[0]
		note(ctx, "loop device reused: "+loop)
	} else {
		if loop, err = losetup(ctx, "-f", "--show", img); err != nil {
			return err
		}
		note(ctx, "loop device attached: "+loop)
	}
	return writeAtomic(d.loopState(id), loop+"\n")
}

// unstageBlock detaches every loop device of the volume's backing file (the record may be
// stale, or missing after a crash between attach and record) and drops the record.
func (d *driver) unstageBlock(ctx context.Context, id string) error {
	devs, err := loopsOf(ctx, d.imagePath(id))
	if err != nil {
		return err
	}
	for _, dev := range devs {
		if _, err := losetup(ctx, "-d", dev); err != nil {
			return err
		}
		note(ctx, "loop device detached: "+dev)
	}
	if len(devs) == 0 {
		note(ctx, "not staged")
	}
	if err := os.Remove(d.loopState(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// blockSource is the loop device NodePublishVolume binds for a staged block volume.
func (d *driver) blockSource(ctx context.Context, r *csi.NodePublishVolumeRequest) (string, error) {
	loop, err := d.stagedLoop(ctx, r.GetVolumeId())
	if err != nil {
		return "", status.Error(codes.Internal, err.Error())
	}
	if loop == "" {
		return "", status.Errorf(codes.FailedPrecondition, "block volume %s is not staged", r.GetVolumeId())
	}
	return loop, nil
}

// makeTarget makes a missing target path: a folder for a mount, a file for a device.
func makeTarget(ctx context.Context, target string, block bool) error {
	fi, err := os.Stat(target)
	if err == nil {
		if block && fi.IsDir() {
			return status.Errorf(codes.FailedPrecondition, "target_path %s is a directory: a block volume is published on a file", target)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return status.Errorf(codes.Internal, "target_path: %v", err)
	}
	if block {
		var f *os.File
		if f, err = os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o640); err == nil {
			err = f.Close()
		}
	} else {
		err = os.Mkdir(target, 0o750)
	}
	if err != nil {
		return status.Errorf(codes.Internal, "target_path: %v", err)
	}
	note(ctx, "target_path created")
	return nil
}

// deviceStats: for a block volume only the total is meaningful (CSI spec).
func deviceStats(p string) (*csi.NodeGetVolumeStatsResponse, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "open %s: %v", p, err)
	}
	defer f.Close()
	size, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "BLKGETSIZE64 %s: %v", p, err)
	}
	return &csi.NodeGetVolumeStatsResponse{Usage: []*csi.VolumeUsage{{Unit: csi.VolumeUsage_BYTES, Total: int64(size)}}}, nil
}

// expandBlock grows the backing file and, if staged, makes the loop device see it.
func (d *driver) expandBlock(ctx context.Context, id string, c int64) (int64, error) {
	img := d.imagePath(id)
	if !exists(img) {
		return 0, status.Errorf(codes.NotFound, "block volume %s: no backing file", id)
	}
	size, err := growImage(img, c)
	if err != nil {
		return 0, status.Error(codes.Internal, err.Error())
	}
	loop, err := d.stagedLoop(ctx, id)
	if err == nil && loop != "" {
		_, err = losetup(ctx, "-c", loop)
		note(ctx, "loop device resized: "+loop)
	}
	if err != nil {
		return 0, status.Error(codes.Internal, err.Error())
	}
	return size, nil
}

// writeAtomic writes a small state file whole or not at all (a crash mid-write must not
// leave a truncated device name).
func writeAtomic(p, s string) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}
