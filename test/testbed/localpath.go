package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The default StorageClass kind and k3d ship: rancher's local-path-provisioner, its
// objects named as in kind's manifest.
const (
	LocalPathProvisionerName = "rancher.io/local-path"
	LocalPathNamespace       = "local-path-storage"
	// LocalPathServiceAccount is the service account of the provisioner's helper pods
	// (the provisioner itself runs on the host with a client certificate of its own).
	LocalPathServiceAccount = "local-path-provisioner-service-account"
	// DefaultStorageClass is the name kind gives its default class.
	DefaultStorageClass = "standard"

	localPathConfigMap = "local-path-config"
	localPathRole      = "local-path-provisioner-role"
	localPathBinding   = "local-path-provisioner-bind"
	// localPathUser is the provisioner's client identity (CN of its certificate).
	localPathUser = "system:local-path-provisioner"
)

// The helper pod's scripts, as in kind's and rancher's manifests: the provisioner runs
// them in a helper pod on the volume's node, with VOL_DIR the volume's folder.
const (
	localPathSetup    = "#!/bin/sh\nset -eu\nmkdir -m 0777 -p \"$VOL_DIR\"\n"
	localPathTeardown = "#!/bin/sh\nset -eu\nrm -rf \"$VOL_DIR\"\n"
)

// LocalPath is rancher's local-path-provisioner (test/tools/local-path-provisioner)
// running on the host beside the bed's control plane, serving the default StorageClass
// "standard". Volumes are folders under DataDir, inside the bed's folder, made and removed
// by helper pods (the bed's busybox image) on the volume's node.
type LocalPath struct {
	b    *Bed
	proc *Proc
	// DataDir is the folder every node's volumes are made in (the config's
	// DEFAULT_PATH_FOR_NON_LISTED_NODES): the nodes of a bed share this machine.
	DataDir string
}

// BuildLocalPathProvisioner builds local-path-provisioner once
// (hack/build-local-path-provisioner.sh; cached by its pin) and returns the binary's path.
func BuildLocalPathProvisioner() (string, error) {
	return runScript("build-local-path-provisioner.sh")
}

// StartLocalPath creates the provisioner's namespace, RBAC, ConfigMap and the default
// StorageClass "standard" (as kind's manifest does), starts the provisioner and waits
// until its controller has synced.
func (b *Bed) StartLocalPath(ctx context.Context) (*LocalPath, error) {
	bin, err := BuildLocalPathProvisioner()
	if err != nil {
		return nil, err
	}
	lp := &LocalPath{b: b, DataDir: filepath.Join(b.Dir, "local-path-storage")}
	if err := os.MkdirAll(lp.DataDir, 0o755); err != nil {
		return nil, err
	}
	confDir := filepath.Join(b.Dir, "local-path-provisioner")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		return nil, err
	}
	config, err := json.MarshalIndent(map[string]any{
		"nodePathMap": []map[string]any{{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": []string{lp.DataDir}}},
	}, "", "  ")
	if err != nil {
		return nil, err
	}
	// The helper pod template: the image is taken from here (v0.0.30 reads
	// --helper-image but never uses it). The provisioner adds the command, the hostPath
	// volume of the volume's parent folder, the scripts' ConfigMap volume, nodeName, the
	// service account, restartPolicy Never and a toleration of every taint.
	helperPod := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: helper-pod
spec:
  containers:
  - name: helper-pod
    image: %s
    imagePullPolicy: IfNotPresent
`, BusyboxImage)
	configFile := filepath.Join(confDir, "config.json") // must end in .json to be read as a file
	helperFile := filepath.Join(confDir, "helperPod.yaml")
	if err := os.WriteFile(configFile, config, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(helperFile, []byte(helperPod), 0o644); err != nil {
		return nil, err
	}
	if err := lp.createObjects(ctx, map[string]string{
		"config.json": string(config), "helperPod.yaml": helperPod,
		"setup": localPathSetup, "teardown": localPathTeardown,
	}); err != nil {
		return nil, err
	}
	kc, err := b.componentKubeconfig("local-path-provisioner", localPathUser)
	if err != nil {
		return nil, err
	}
	p, err := b.start("local-path-provisioner", bin, []string{
		"--debug", "start",
		"--kubeconfig=" + kc,
		"--namespace=" + LocalPathNamespace,
		"--service-account-name=" + LocalPathServiceAccount,
		"--provisioner-name=" + LocalPathProvisionerName,
		"--configmap-name=" + localPathConfigMap,
		"--config=" + configFile,
		"--helper-pod-file=" + helperFile,
		"--helper-image=" + BusyboxImage,
	}, nil)
	if err != nil {
		return nil, err
	}
	lp.proc = p
	// The controller logs this once its PVC, PV and StorageClass informers have synced.
	if err := waitFor(time.Minute, p, func() error {
		b, err := os.ReadFile(p.LogPath)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), "Started provisioner controller") {
			return fmt.Errorf("local-path-provisioner controller not started")
		}
		return nil
	}); err != nil {
		lp.Stop()
		return nil, fmt.Errorf("%w\n%s", err, p.Tail(20))
	}
	return lp, nil
}

// createObjects makes what kind's manifest makes but the Deployment: the namespace, the
// helper pods' service account, a ClusterRole as kind's (bound to the provisioner's own
// user), the ConfigMap and the default StorageClass.
func (lp *LocalPath) createObjects(ctx context.Context, cm map[string]string) error {
	c := lp.b.Client
	// A namespace an earlier Stop deleted may still be terminating.
	if err := waitFor(time.Minute, nil, func() error {
		ns, err := c.CoreV1().Namespaces().Get(ctx, LocalPathNamespace, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = c.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: LocalPathNamespace}}, metav1.CreateOptions{})
			return err
		}
		if err == nil && ns.DeletionTimestamp != nil {
			return fmt.Errorf("namespace %s is terminating", LocalPathNamespace)
		}
		return err
	}); err != nil {
		return err
	}
	create := func(what string, err error) error {
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	_, err := c.CoreV1().ServiceAccounts(LocalPathNamespace).Create(ctx, &v1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: LocalPathServiceAccount, Namespace: LocalPathNamespace}}, metav1.CreateOptions{})
	if err := create("ServiceAccount", err); err != nil {
		return err
	}
	_, err = c.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: localPathRole},
		Rules: []rbacv1.PolicyRule{
			// kind's rules, and update on claims: the controller library updates a claim
			// to drop its selected node when provisioning there failed for good.
			{APIGroups: []string{""}, Resources: []string{"nodes", "configmaps"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"persistentvolumeclaims"}, Verbs: []string{"get", "list", "watch", "update"}},
			{APIGroups: []string{""}, Resources: []string{"endpoints", "persistentvolumes", "pods"}, Verbs: []string{"*"}},
			{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
			{APIGroups: []string{"storage.k8s.io"}, Resources: []string{"storageclasses"}, Verbs: []string{"get", "list", "watch"}},
		},
	}, metav1.CreateOptions{})
	if err := create("ClusterRole", err); err != nil {
		return err
	}
	_, err = c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: localPathBinding},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: localPathRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: localPathUser}},
	}, metav1.CreateOptions{})
	if err := create("ClusterRoleBinding", err); err != nil {
		return err
	}
	// The helper pods mount the scripts from this ConfigMap; config.json and
	// helperPod.yaml are there too, as in kind, though the provisioner reads its files.
	_ = c.CoreV1().ConfigMaps(LocalPathNamespace).Delete(ctx, localPathConfigMap, metav1.DeleteOptions{})
	_, err = c.CoreV1().ConfigMaps(LocalPathNamespace).Create(ctx, &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: localPathConfigMap, Namespace: LocalPathNamespace}, Data: cm}, metav1.CreateOptions{})
	if err := create("ConfigMap", err); err != nil {
		return err
	}
	wffc := storagev1.VolumeBindingWaitForFirstConsumer
	del := v1.PersistentVolumeReclaimDelete
	_, err = c.StorageV1().StorageClasses().Create(ctx, &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{Name: DefaultStorageClass,
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
		Provisioner:       LocalPathProvisionerName,
		VolumeBindingMode: &wffc,
		ReclaimPolicy:     &del,
	}, metav1.CreateOptions{})
	return create("StorageClass", err)
}

// Tail is the end of the provisioner's log.
func (lp *LocalPath) Tail(n int) string { return lp.proc.Tail(n) }

// Stop deletes the StorageClass, stops the provisioner, deletes its RBAC and namespace and
// removes the volumes' folder (helper pods make root-owned folders there; it is the
// bed's own). PersistentVolumes it made are left to whoever made their claims.
func (lp *LocalPath) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := lp.b.Client
	_ = c.StorageV1().StorageClasses().Delete(ctx, DefaultStorageClass, metav1.DeleteOptions{})
	if lp.proc != nil {
		_ = lp.proc.Stop(10 * time.Second)
	}
	_ = c.RbacV1().ClusterRoleBindings().Delete(ctx, localPathBinding, metav1.DeleteOptions{})
	_ = c.RbacV1().ClusterRoles().Delete(ctx, localPathRole, metav1.DeleteOptions{})
	// Helper pods left on a node that has gone would hold the namespace (and so the next
	// start) until pod garbage collection: remove them at once, and wait for the namespace.
	_ = c.CoreV1().Pods(LocalPathNamespace).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, metav1.ListOptions{})
	_ = c.CoreV1().Namespaces().Delete(ctx, LocalPathNamespace, metav1.DeleteOptions{})
	_ = waitFor(80*time.Second, nil, func() error {
		if _, err := c.CoreV1().Namespaces().Get(ctx, LocalPathNamespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("namespace %s still there (%v)", LocalPathNamespace, err)
		}
		return nil
	})
	unmountUnder(lp.DataDir)
	_ = os.RemoveAll(lp.DataDir)
}
