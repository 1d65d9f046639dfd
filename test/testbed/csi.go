package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The test bed's CSI driver (test/csidriver), one process per node, and external-attacher
// (test/tools/csi-attacher) with a controller instance of the driver of its own.

const (
	// CSIDriverName is the driver's name, in PVs, CSINode and the CSIDriver object.
	CSIDriverName = "csi.e2e.minikubelet.io"
	// CSITopologyKey is the driver's topology key: the node's ID.
	CSITopologyKey = "topology.csi.e2e.minikubelet.io/node"
)

// CSIDriver is the driver running for one node.
type CSIDriver struct {
	*Proc
	NodeID string
	// Dir is the driver's folder in the bed: Endpoint and StateDir are in it.
	Dir string
	// Endpoint is the CSI socket.
	Endpoint string
	// StateDir holds the volumes' data: StateDir/volumes/<volume handle>.
	StateDir string
	// RegistrationSocket is the plugin registration socket in the kubelet's
	// plugins_registry ("" without registration).
	RegistrationSocket string
}

// VolumeDir is where the volume with this handle keeps its data.
func (d *CSIDriver) VolumeDir(handle string) string {
	return filepath.Join(d.StateDir, "volumes", handle)
}

// CSIDriverOption changes how StartCSIDriver starts the driver.
type CSIDriverOption func(*csiDriverConfig)

type csiDriverConfig struct {
	nodeID   string
	register bool
}

// CSINodeID sets the driver's node ID (default: the node's name).
func CSINodeID(id string) CSIDriverOption { return func(c *csiDriverConfig) { c.nodeID = id } }

// CSINoRegistration starts the driver without serving the kubelet plugin registration:
// the node agent never learns of it.
func CSINoRegistration() CSIDriverOption { return func(c *csiDriverConfig) { c.register = false } }

// BuildCSIDriver builds test/csidriver into the bed's bin folder (once per bed).
func (b *Bed) BuildCSIDriver() (string, error) {
	bin := filepath.Join(b.Dir, "bin", "csidriver")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	tmp := bin + ".tmp"
	if err := BuildGoIn(filepath.Join(RepoRoot(), "test", "csidriver"), ".", tmp, "-s -w"); err != nil {
		return "", err
	}
	return bin, os.Rename(tmp, bin)
}

// StartCSIDriver starts the driver for node agent k: its CSI socket and state in
// <bed>/csi/<node>, and its registration socket in k.RootDir/plugins_registry, where the
// node agent's plugin watcher finds it (node-driver-registrar's part, served by the
// driver itself). It returns once the sockets are there.
func (b *Bed) StartCSIDriver(k *Kubelet, opts ...CSIDriverOption) (*CSIDriver, error) {
	c := csiDriverConfig{nodeID: k.NodeName, register: true}
	for _, o := range opts {
		o(&c)
	}
	regDir := ""
	if c.register {
		regDir = filepath.Join(k.RootDir, "plugins_registry")
	}
	return b.startCSIDriver("csi-driver-"+k.NodeName, filepath.Join(b.Dir, "csi", k.NodeName), c.nodeID, regDir)
}

func (b *Bed) startCSIDriver(procName, dir, nodeID, regDir string, extra ...string) (*CSIDriver, error) {
	bin, err := b.BuildCSIDriver()
	if err != nil {
		return nil, err
	}
	d := &CSIDriver{NodeID: nodeID, Dir: dir, Endpoint: filepath.Join(dir, "csi.sock"), StateDir: filepath.Join(dir, "state")}
	if err := os.MkdirAll(d.StateDir, 0o755); err != nil {
		return nil, err
	}
	args := append([]string{"--endpoint=" + d.Endpoint, "--node-id=" + nodeID, "--state-dir=" + d.StateDir}, extra...)
	if regDir != "" {
		d.RegistrationSocket = filepath.Join(regDir, CSIDriverName+"-reg.sock")
		if len(d.RegistrationSocket) > 107 {
			return nil, fmt.Errorf("registration socket %s is longer than a unix socket address allows (107 bytes): use a shorter node name", d.RegistrationSocket)
		}
		args = append(args, "--registration-dir="+regDir)
	}
	if d.Proc, err = b.start(procName, bin, args, nil); err != nil {
		return nil, err
	}
	if err := waitFor(30*time.Second, d.Proc, func() error {
		for _, s := range []string{d.Endpoint, d.RegistrationSocket} {
			if s == "" {
				continue
			}
			if fi, err := os.Stat(s); err != nil || fi.Mode()&os.ModeSocket == 0 {
				return fmt.Errorf("socket %s not there yet", s)
			}
		}
		return nil
	}); err != nil {
		d.Stop()
		return nil, fmt.Errorf("CSI driver %s: %w", procName, err)
	}
	return d, nil
}

// Stop stops the driver by its PID, unmounts what it mounted and did not unmount (its
// journal, <state>/mounts, names the targets: staging and publish paths in the node
// agent's folder) and anything under its folder, and removes its folder and its
// registration socket.
func (d *CSIDriver) Stop() {
	if d.Proc != nil {
		_ = d.Proc.Stop(10 * time.Second)
	}
	entries, _ := os.ReadDir(filepath.Join(d.StateDir, "mounts"))
	for _, e := range entries {
		if t, err := os.ReadFile(filepath.Join(d.StateDir, "mounts", e.Name())); err == nil {
			target := strings.TrimSpace(string(t))
			for syscall.Unmount(target, syscall.MNT_DETACH) == nil {
			}
		}
	}
	unmountUnder(d.Dir)
	// Block volumes still staged: their loop devices (named in block/<handle>) go too.
	loops, _ := filepath.Glob(filepath.Join(d.StateDir, "block", "*"))
	for _, f := range loops {
		if b, err := os.ReadFile(f); err == nil && strings.HasPrefix(string(b), "/dev/loop") {
			_ = exec.Command("losetup", "-d", strings.TrimSpace(string(b))).Run()
		}
	}
	if d.RegistrationSocket != "" {
		_ = os.Remove(d.RegistrationSocket)
	}
	_ = os.RemoveAll(d.Dir)
}

// Calls are the driver's log lines of CSI calls ("csi: <Method> ..."), in order.
func (d *CSIDriver) Calls() []string {
	b, _ := os.ReadFile(d.LogPath)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if i := strings.Index(l, "csi: "); i >= 0 {
			out = append(out, l[i:])
		}
	}
	return out
}

// CSIAttacher is external-attacher (csi-attacher) for the bed, on a controller instance
// of the driver (node ID "controller", no registration): the driver's controller service
// is node-independent, and csi-attacher exits when its driver's socket goes, so it gets
// a driver no node's test stops.
type CSIAttacher struct {
	b *Bed
	// Controller is the driver instance csi-attacher calls.
	Controller *CSIDriver
	proc       *Proc
}

// BuildCSIAttacher builds csi-attacher once (hack/build-csi-attacher.sh; cached by its
// pin) and returns the binary's path.
func BuildCSIAttacher() (string, error) { return runScript("build-csi-attacher.sh") }

// CSIAttacherUser is the identity csi-attacher talks to the API server as.
const CSIAttacherUser = "system:csi-attacher"

// StartCSIAttacher creates the CSIDriver object (attachRequired, podInfoOnMount,
// Persistent and Ephemeral, fsGroupPolicy File) and the RBAC external-attacher needs,
// starts the controller instance of the driver and csi-attacher on it, and returns once
// csi-attacher has asked the driver its controller capabilities.
func (b *Bed) StartCSIAttacher(ctx context.Context) (*CSIAttacher, error) {
	bin, err := BuildCSIAttacher()
	if err != nil {
		return nil, err
	}
	if err := b.csiAttacherRBAC(ctx); err != nil {
		return nil, err
	}
	if err := b.createCSIDriverObject(ctx); err != nil {
		return nil, err
	}
	crt, key, err := b.PKI.Issue("csi-attacher", CSIAttacherUser, nil, nil)
	if err != nil {
		return nil, err
	}
	kc := filepath.Join(b.Dir, "csi-attacher.kubeconfig")
	if err := WriteKubeconfig(kc, b.APIServerURL, b.PKI.CAFile(), crt, key); err != nil {
		return nil, err
	}
	// The controller instance also provisions (external-provisioner's part) with the
	// attacher's identity, for the class CSIStorageClass.
	if err := b.createCSIStorageClass(ctx); err != nil {
		return nil, err
	}
	ctrl, err := b.startCSIDriver("csi-controller", filepath.Join(b.Dir, "csi-controller"), "controller", "", "--provisioner-kubeconfig="+kc)
	if err != nil {
		return nil, err
	}
	a := &CSIAttacher{b: b, Controller: ctrl}
	a.proc, err = b.start("csi-attacher", bin, []string{
		"--kubeconfig=" + kc, "--csi-address=" + ctrl.Endpoint,
		"--leader-election=false", "--timeout=15s", "--retry-interval-max=20s", "--v=4",
	}, nil)
	if err != nil {
		ctrl.Stop()
		return nil, err
	}
	if err := waitFor(time.Minute, a.proc, func() error {
		for _, c := range ctrl.Calls() {
			if strings.HasPrefix(c, "csi: ControllerGetCapabilities ") {
				return nil
			}
		}
		return errors.New("csi-attacher has not asked the driver's controller capabilities yet")
	}); err != nil {
		a.Stop()
		return nil, fmt.Errorf("csi-attacher: %w\n%s", err, a.proc.Tail(20))
	}
	return a, nil
}

// Tail is the end of csi-attacher's log.
func (a *CSIAttacher) Tail(n int) string { return a.proc.Tail(n) }

// Stop stops csi-attacher and its driver, and deletes the CSIDriver object.
func (a *CSIAttacher) Stop() {
	_ = a.proc.Stop(10 * time.Second)
	a.Controller.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = a.b.Client.StorageV1().CSIDrivers().Delete(ctx, CSIDriverName, metav1.DeleteOptions{})
	_ = a.b.Client.StorageV1().StorageClasses().Delete(ctx, CSIStorageClass, metav1.DeleteOptions{})
}

// CSIStorageClass provisions through the bed's CSI driver: WaitForFirstConsumer (the PV
// gets node affinity to the scheduler's node), Delete, expandable.
const CSIStorageClass = "csi-e2e"

func (b *Bed) createCSIStorageClass(ctx context.Context) error {
	wait, del := storagev1.VolumeBindingWaitForFirstConsumer, v1.PersistentVolumeReclaimDelete
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: CSIStorageClass}, Provisioner: CSIDriverName,
		VolumeBindingMode: &wait, ReclaimPolicy: &del, AllowVolumeExpansion: new(true)}
	if _, err := b.Client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// createCSIDriverObject (re)creates the CSIDriver object.
func (b *Bed) createCSIDriverObject(ctx context.Context) error {
	policy := storagev1.FileFSGroupPolicy
	obj := &storagev1.CSIDriver{
		ObjectMeta: metav1.ObjectMeta{Name: CSIDriverName},
		Spec: storagev1.CSIDriverSpec{
			AttachRequired:       new(true),
			PodInfoOnMount:       new(true),
			VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent, storagev1.VolumeLifecycleEphemeral},
			FSGroupPolicy:        &policy,
			RequiresRepublish:    new(false),
		},
	}
	err := b.Client.StorageV1().CSIDrivers().Delete(ctx, CSIDriverName, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	_, err = b.Client.StorageV1().CSIDrivers().Create(ctx, obj, metav1.CreateOptions{})
	return err
}

// csiAttacherRBAC grants CSIAttacherUser what external-attacher's own RBAC grants its
// service account (PVs, VolumeAttachments and their status, CSINodes; leases for leader
// election in kube-system), and events.
func (b *Bed) csiAttacherRBAC(ctx context.Context) error {
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"persistentvolumes"}, Verbs: []string{"get", "list", "watch", "patch", "create", "delete"}},
		// The controller instance's provisioner (external-provisioner's rules).
		{APIGroups: []string{""}, Resources: []string{"persistentvolumeclaims"}, Verbs: []string{"get", "list", "watch", "update"}},
		{APIGroups: []string{"storage.k8s.io"}, Resources: []string{"storageclasses"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{"storage.k8s.io"}, Resources: []string{"csinodes"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"storage.k8s.io"}, Resources: []string{"volumeattachments"}, Verbs: []string{"get", "list", "watch", "patch"}},
		{APIGroups: []string{"storage.k8s.io"}, Resources: []string{"volumeattachments/status"}, Verbs: []string{"patch"}},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "watch", "list", "delete", "update", "create"}},
	}
	name := "minikubelet-testbed:csi-attacher"
	cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
	if _, err := b.Client.RbacV1().ClusterRoles().Create(ctx, cr, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		if _, err := b.Client.RbacV1().ClusterRoles().Update(ctx, cr, metav1.UpdateOptions{}); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: CSIAttacherUser}},
	}
	if _, err := b.Client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}
