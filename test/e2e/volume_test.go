package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/pkg/kubelet/node/csrtesting"
	"github.com/minikubelet/minikubelet/test/testbed"
)

// TestVolumeKinds runs one pod with every supported volume kind and reads the files back
// from inside it: configMap (with a live update), secret (tmpfs, item modes), downward API,
// emptyDir shared between containers and surviving a container restart, memory emptyDir,
// hostPath, subPath, and the kube-api-access projected volume whose token the apiserver
// accepts. Deleting the pod removes its volumes from the host.
func TestVolumeKinds(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	k := startKubelet(t, "vol-kinds")
	watchNode(ctx, t, k.NodeName, isReady)

	suffix := time.Now().Format("150405.000")
	suffix = strings.ReplaceAll(suffix, ".", "")
	cm, err := bed.Client.CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "vol-cm-" + suffix},
		Data:       map[string]string{"greeting": "hello", "other": "x"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := bed.Client.CoreV1().Secrets("default").Create(ctx, &v1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "vol-sec-" + suffix},
		Data:       map[string][]byte{"password": []byte("hunter2")}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = bed.Client.CoreV1().ConfigMaps("default").Delete(context.Background(), cm.Name, metav1.DeleteOptions{})
		_ = bed.Client.CoreV1().Secrets("default").Delete(context.Background(), sec.Name, metav1.DeleteOptions{})
	})
	hostDir := filepath.Join(t.TempDir(), "host")

	pod := testAppPod(k.NodeName, "serve", "--http=:8080")
	pod.Labels = map[string]string{"app": "vol"}
	pod.Spec.AutomountServiceAccountToken = ptr(true) // the apiserver adds kube-api-access-*
	mode := int32(0o400)
	dirType := v1.HostPathDirectoryOrCreate
	pod.Spec.Volumes = []v1.Volume{
		{Name: "cfg", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: cm.Name}}}},
		{Name: "sec", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: sec.Name,
			Items: []v1.KeyToPath{{Key: "password", Path: "creds/pw", Mode: &mode}}}}},
		{Name: "info", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "mem", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "main", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
		}}}},
		{Name: "shared", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		{Name: "mem", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: ptr(resource.MustParse("8Mi"))}}},
		{Name: "host", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: hostDir, Type: &dirType}}},
	}
	main := &pod.Spec.Containers[0]
	main.Resources.Limits = v1.ResourceList{v1.ResourceMemory: resource.MustParse("128Mi")}
	main.VolumeMounts = []v1.VolumeMount{
		{Name: "cfg", MountPath: "/etc/cfg"},
		{Name: "sec", MountPath: "/etc/sec"},
		{Name: "info", MountPath: "/etc/info"},
		{Name: "shared", MountPath: "/shared"},
		{Name: "shared", MountPath: "/sub", SubPath: "nested/dir"},
		{Name: "mem", MountPath: "/mem"},
		{Name: "host", MountPath: "/host"},
		{Name: "cfg", MountPath: "/single/greeting.txt", SubPath: "greeting"},
	}
	// The writer counts its own starts in the shared emptyDir, crashes once, then stays:
	// the second start sees the first one's line, so the data survived the restart.
	pod.Spec.Containers = append(pod.Spec.Containers, v1.Container{
		Name: "writer", Image: testbed.BusyboxImage, ImagePullPolicy: v1.PullIfNotPresent,
		Command: []string{"sh", "-c", `echo start >> /data/starts; echo sub > /data/nested/dir/from-writer 2>/dev/null; ` +
			`echo host > /host/from-pod; [ "$(wc -l < /data/starts)" -ge 2 ] && exec sleep 3600; exit 1`},
		VolumeMounts: []v1.VolumeMount{{Name: "shared", MountPath: "/data"}, {Name: "host", MountPath: "/host"}},
	})
	p := watchPod(ctx, t, createPod(ctx, t, pod), "Running and writer restarted once", func(p *v1.Pod) bool {
		w := containerStatus(p, "writer")
		return p.Status.Phase == v1.PodRunning && w != nil && w.RestartCount == 1 && w.State.Running != nil
	})
	addr := p.Status.PodIP + ":8080"

	for path, want := range map[string]string{
		"/etc/cfg/greeting":    "hello",
		"/single/greeting.txt": "hello",
		"/etc/sec/creds/pw":    "hunter2",
		"/etc/info/labels":     `app="vol"`,
		"/etc/info/mem":        "128",
		"/shared/starts":       "start\nstart\n",
		"/sub/from-writer":     "sub\n",
		"/var/run/secrets/kubernetes.io/serviceaccount/namespace": "default",
	} {
		if got := get(t, addr, "/file?path="+path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(hostDir, "from-pod")); err != nil || string(b) != "host\n" {
		t.Errorf("hostPath file = %q, %v", b, err)
	}
	mounts := get(t, addr, "/file?path=/proc/mounts")
	for _, want := range []string{" /mem tmpfs ", " /etc/sec tmpfs ro,", " /etc/cfg ", " /var/run/secrets/kubernetes.io/serviceaccount tmpfs ro,"} {
		if !strings.Contains(mounts, want) {
			t.Errorf("/proc/mounts lacks %q:\n%s", want, mounts)
		}
	}
	if !strings.Contains(mounts, "/mem tmpfs rw,nosuid,nodev,relatime,size=8192k") {
		t.Errorf("memory emptyDir without its size limit:\n%s", mounts)
	}

	// The kube-api-access token is a real token for the pod's service account.
	token := get(t, addr, "/file?path=/var/run/secrets/kubernetes.io/serviceaccount/token")
	review, err := bed.Client.AuthenticationV1().TokenReviews().Create(ctx, &authv1.TokenReview{Spec: authv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !review.Status.Authenticated || review.Status.User.Username != "system:serviceaccount:default:default" {
		t.Errorf("token review: %+v", review.Status)
	}
	if got := review.Status.User.Extra["authentication.kubernetes.io/pod-uid"]; len(got) != 1 || got[0] != string(p.UID) {
		t.Errorf("token not bound to the pod: extra %v", review.Status.User.Extra)
	}
	caWant, _ := os.ReadFile(bed.PKI.CAFile())
	if ca := get(t, addr, "/file?path=/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"); ca != string(caWant) {
		t.Errorf("ca.crt is not the cluster CA:\n%s", ca)
	}

	// A configMap update reaches the running pod (upstream: within about a minute).
	cm.Data["greeting"] = "updated"
	if _, err := bed.Client.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	updated := time.Now()
	for get(t, addr, "/file?path=/etc/cfg/greeting") != "updated" {
		if time.Since(updated) > time.Minute {
			t.Fatal("configMap update not visible in the pod after a minute")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("configMap update visible in the pod after %v", time.Since(updated).Round(time.Millisecond))

	podDir := filepath.Join(k.RootDir, "pods", string(p.UID))
	if _, err := os.Stat(filepath.Join(podDir, "volumes", "kubernetes.io~empty-dir", "shared", "starts")); err != nil {
		t.Fatalf("emptyDir not where upstream keeps it: %v", err)
	}
	if err := bed.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := waitPodGone(ctx, p); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(podDir); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod folder %s still there after the pod is gone", podDir)
		}
	}
	if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), podDir) {
		t.Errorf("mounts of the deleted pod remain:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(hostDir, "from-pod")); err != nil {
		t.Errorf("hostPath contents must survive the pod: %v", err)
	}
}

// TestVolumeUnsupportedAndMissing: a volume the node cannot provide keeps the pod in
// ContainerCreating with a FailedMount event naming the volume; creating the missing
// configMap lets the same pod start.
func TestVolumeUnsupportedAndMissing(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "vol-bad")
	watchNode(ctx, t, k.NodeName, isReady)

	pvc := newPod(k.NodeName, "sleep", "3600")
	// An in-tree network volume minikubelet has no plugin for (nothing is contacted).
	pvc.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{NFS: &v1.NFSVolumeSource{Server: "127.0.0.1", Path: "/export"}}}}
	pvc.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data"}}
	p1 := createPod(ctx, t, pvc)

	name := "late-cm-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	late := newPod(k.NodeName, "sleep", "3600")
	late.Spec.Volumes = []v1.Volume{{Name: "cfg", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: name}}}}}
	late.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "cfg", MountPath: "/cfg"}}
	p2 := createPod(ctx, t, late)

	waitEvent(ctx, t, p1, "FailedMount", `MountVolume.SetUp failed for volume "data" : volume type nfs is not supported by minikubelet`)
	waitEvent(ctx, t, p2, "FailedMount", `MountVolume.SetUp failed for volume "cfg" : configmap "`+name+`" not found`)
	cur := watchPod(ctx, t, p1, "ContainerCreating", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == "ContainerCreating"
	})
	if cur.Status.Phase != v1.PodPending {
		t.Errorf("phase %s, want Pending", cur.Status.Phase)
	}

	if _, err := bed.Client.CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"k": "v"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = bed.Client.CoreV1().ConfigMaps("default").Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	watchPod(ctx, t, p2, "Running once the configMap exists", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
}

// TestVolumeClusterTrustBundle projects ClusterTrustBundles into a pod, by name and by
// signer and labels (each certificate once, even when two bundles hold it); a required
// bundle that does not exist keeps its pod from starting with upstream's FailedMount event.
func TestVolumeClusterTrustBundle(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "vol-ctb")
	watchNode(ctx, t, k.NodeName, isReady)
	suffix := strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	signer := "e2e.example.com/ctb-" + suffix
	ca := []string{string(csrtesting.NewCA(t).PEM), string(csrtesting.NewCA(t).PEM), string(csrtesting.NewCA(t).PEM)}
	for _, ctb := range []*certificatesv1.ClusterTrustBundle{
		{ObjectMeta: metav1.ObjectMeta{Name: "vol-ctb-" + suffix}, Spec: certificatesv1.ClusterTrustBundleSpec{TrustBundle: ca[0]}},
		{ObjectMeta: metav1.ObjectMeta{Name: "e2e.example.com:ctb-" + suffix + ":one", Labels: map[string]string{"pick": "yes"}},
			Spec: certificatesv1.ClusterTrustBundleSpec{SignerName: signer, TrustBundle: ca[1] + ca[2]}},
		{ObjectMeta: metav1.ObjectMeta{Name: "e2e.example.com:ctb-" + suffix + ":two", Labels: map[string]string{"pick": "yes"}},
			Spec: certificatesv1.ClusterTrustBundleSpec{SignerName: signer, TrustBundle: ca[2]}},
		{ObjectMeta: metav1.ObjectMeta{Name: "e2e.example.com:ctb-" + suffix + ":other", Labels: map[string]string{"pick": "no"}},
			Spec: certificatesv1.ClusterTrustBundleSpec{SignerName: signer, TrustBundle: ca[0]}},
	} {
		if _, err := bed.Client.CertificatesV1().ClusterTrustBundles().Create(ctx, ctb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = bed.Client.CertificatesV1().ClusterTrustBundles().Delete(context.Background(), ctb.Name, metav1.DeleteOptions{})
		})
	}

	pod := newPod(k.NodeName, "sh", "-c", "cat /ctb/by-name.pem; echo SEPARATOR; cat /ctb/by-signer.pem")
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	pod.Spec.Volumes = []v1.Volume{{Name: "ctb", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
		{ClusterTrustBundle: &v1.ClusterTrustBundleProjection{Name: ptr("vol-ctb-" + suffix), Path: "by-name.pem"}},
		{ClusterTrustBundle: &v1.ClusterTrustBundleProjection{SignerName: &signer, Path: "by-signer.pem",
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"pick": "yes"}}}},
	}}}}}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "ctb", MountPath: "/ctb"}}
	p := watchPod(ctx, t, createPod(ctx, t, pod), "succeeded", phaseIs(v1.PodSucceeded))
	out, err := podLogs(ctx, p, &v1.PodLogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byName, bySigner, _ := strings.Cut(out, "SEPARATOR\n")
	if byName != ca[0] {
		t.Errorf("by name: %q, want the bundle's certificate %q", byName, ca[0])
	}
	if len(bySigner) != len(ca[1])+len(ca[2]) || !strings.Contains(bySigner, ca[1]) || !strings.Contains(bySigner, ca[2]) {
		t.Errorf("by signer and labels: %q, want the two matching bundles' certificates, each once", bySigner)
	}

	missing := newPod(k.NodeName, "true")
	missing.Spec.Volumes = []v1.Volume{{Name: "ctb", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
		{ClusterTrustBundle: &v1.ClusterTrustBundleProjection{Name: ptr("does-not-exist-" + suffix), Path: "x.pem"}},
	}}}}}
	missing.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "ctb", MountPath: "/ctb"}}
	m := createPod(ctx, t, missing)
	waitEvent(ctx, t, m, "FailedMount", `MountVolume.SetUp failed for volume "ctb" : while getting ClusterTrustBundle: `)
	if got, _ := bed.Client.CoreV1().Pods(m.Namespace).Get(ctx, m.Name, metav1.GetOptions{}); got.Status.Phase != v1.PodPending {
		t.Errorf("a pod whose required bundle is missing is %s, want Pending", got.Status.Phase)
	}
}
