package volume

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteAtomicSwapsGenerations(t *testing.T) {
	dir := t.TempDir()
	changed, err := writeAtomic(dir, map[string]File{"a": {[]byte("1"), 0o644}, "sub/b": {[]byte("2"), 0o600}}, -1)
	if err != nil || !changed {
		t.Fatalf("first write: changed=%v err=%v", changed, err)
	}
	if got := read(t, filepath.Join(dir, "a")); got != "1" {
		t.Fatalf("a = %q", got)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "sub/b")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("sub/b mode %v", fi.Mode())
	}
	if l, _ := os.Readlink(filepath.Join(dir, "a")); l != "..data/a" {
		t.Fatalf("a should link into ..data, is %q", l)
	}
	gen1, _ := os.Readlink(filepath.Join(dir, dataLink))

	changed, err = writeAtomic(dir, map[string]File{"a": {[]byte("1"), 0o644}, "sub/b": {[]byte("2"), 0o600}}, -1)
	if err != nil || changed {
		t.Fatalf("same content must not rewrite: changed=%v err=%v", changed, err)
	}

	changed, err = writeAtomic(dir, map[string]File{"a": {[]byte("new"), 0o644}}, -1)
	if err != nil || !changed {
		t.Fatalf("update: changed=%v err=%v", changed, err)
	}
	if got := read(t, filepath.Join(dir, "a")); got != "new" {
		t.Fatalf("a = %q after update", got)
	}
	if _, err := os.Lstat(filepath.Join(dir, "sub")); !os.IsNotExist(err) {
		t.Fatalf("sub should be gone: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, gen1)); !os.IsNotExist(err) {
		t.Fatalf("old generation %s should be removed", gen1)
	}
}

func TestSubPath(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../..", filepath.Join(root, "up")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		sub, wantErr string
		want         string
	}{
		{sub: "a/b", want: filepath.Join(root, "a/b")},
		{sub: "../x", wantErr: "must not contain '..'"},
		{sub: "a/../../x", wantErr: "must not contain '..'"},
		{sub: "/etc", wantErr: "must be a relative path"},
		{sub: "", wantErr: "must not be empty"},
		// Symlinks are resolved inside the volume: they cannot lead out of it.
		{sub: "escape/f", want: filepath.Join(root, outside, "f")},
		{sub: "up/etc", want: filepath.Join(root, "etc")},
	} {
		got, err := SubPath(root, tc.sub)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("SubPath(%q) err = %v, want %q", tc.sub, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("SubPath(%q) = %q, %v; want %q", tc.sub, got, err, tc.want)
		}
		if !strings.HasPrefix(got, root+"/") {
			t.Errorf("SubPath(%q) = %q left the volume", tc.sub, got)
		}
	}
}

// FuzzSubPath: whatever the sub-path, the result is inside the volume or an error.
func FuzzSubPath(f *testing.F) {
	for _, s := range []string{"a", "../a", "a/../..", "/abs", "x/./y", "..", "a//b", "escape/../../z"} {
		f.Add(s)
	}
	root := f.TempDir()
	outside := f.TempDir()
	_ = os.Symlink(outside, filepath.Join(root, "escape"))
	_ = os.Symlink("/", filepath.Join(root, "rootlink"))
	f.Fuzz(func(t *testing.T, sub string) {
		if strings.ContainsRune(sub, 0) || len(sub) > 200 {
			return
		}
		got, err := SubPath(root, sub)
		if err != nil {
			return
		}
		if got != root && !strings.HasPrefix(got, root+"/") {
			t.Fatalf("SubPath(%q) = %q escapes %q", sub, got, root)
		}
		real, err := filepath.EvalSymlinks(got)
		if err == nil && real != root && !strings.HasPrefix(real, root+"/") && !strings.HasPrefix(real, filepath.Join(root, outside)) {
			t.Fatalf("SubPath(%q) = %q resolves to %q outside the volume", sub, got, real)
		}
	})
}

func TestCheckHostPath(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	typ := func(x v1.HostPathType) *v1.HostPathType { return &x }
	for _, tc := range []struct {
		path    string
		typ     *v1.HostPathType
		wantErr string
	}{
		{dir, nil, ""},
		{filepath.Join(dir, "missing"), nil, ""},
		{dir, typ(v1.HostPathDirectory), ""},
		{file, typ(v1.HostPathDirectory), "is not a directory"},
		{filepath.Join(dir, "missing"), typ(v1.HostPathDirectory), "is not a directory"},
		{filepath.Join(dir, "new/dir"), typ(v1.HostPathDirectoryOrCreate), ""},
		{file, typ(v1.HostPathFile), ""},
		{dir, typ(v1.HostPathFile), "is not a file"},
		{filepath.Join(dir, "made/file"), typ(v1.HostPathFileOrCreate), ""},
		{file, typ(v1.HostPathSocket), "is not a socket file"},
		{file, typ(v1.HostPathCharDev), "is not a character device"},
		{"/dev/null", typ(v1.HostPathCharDev), ""},
		{file, typ(v1.HostPathBlockDev), "is not a block device"},
	} {
		err := checkHostPath(&v1.HostPathVolumeSource{Path: tc.path, Type: tc.typ})
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s %v: err = %v, want %q", tc.path, tc.typ, err, tc.wantErr)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "made/file")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("FileOrCreate did not create a file: %v", err)
	}
}

func testPod(vols ...v1.Volume) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1", Labels: map[string]string{"b": "2", "a": "x\"y"}},
		Spec: v1.PodSpec{Volumes: vols, Containers: []v1.Container{{Name: "c",
			Resources: v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceMemory: resource.MustParse("64Mi")}}}}},
	}
}

func newTestManager(t *testing.T, objs ...runtime.Object) (*Manager, *fake.Clientset, *clocktesting.FakeClock) {
	t.Helper()
	client := fake.NewClientset(objs...)
	clk := clocktesting.NewFakeClock(time.Now())
	m, err := New(Config{Client: client, RootDir: t.TempDir(), Clock: clk,
		Allocatable: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")}})
	if err != nil {
		t.Fatal(err)
	}
	return m, client, clk
}

func TestContentVolumes(t *testing.T) {
	yes := true
	mode := int32(0o400)
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "ns"}, Data: map[string]string{"k1": "v1", "k2": "v2"}, BinaryData: map[string][]byte{"bin": {0, 1}}}
	m, client, _ := newTestManager(t, cm)
	pod := testPod(
		v1.Volume{Name: "all", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}}}},
		v1.Volume{Name: "items", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"},
			Items: []v1.KeyToPath{{Key: "k2", Path: "dir/two", Mode: &mode}}}}},
		v1.Volume{Name: "opt", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}, Optional: &yes}}},
		v1.Volume{Name: "dapi", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "name", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}},
			{Path: "mem", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "c", Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}},
			{Path: "cpu", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "c", Resource: "limits.cpu", Divisor: resource.MustParse("1m")}},
		}}}},
	)
	mounts, err := m.SetUp(context.Background(), pod, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.TearDown(context.Background(), pod.UID) })
	if !m.Exist(pod.UID) {
		t.Errorf("Exist after set-up: false")
	}
	all := mounts["all"]
	if !all.ReadOnly || !strings.HasSuffix(all.HostPath, "pods/uid-1/volumes/kubernetes.io~configmap/all") {
		t.Fatalf("all = %+v", all)
	}
	for f, want := range map[string]string{"all/k1": "v1", "all/k2": "v2", "all/bin": "\x00\x01", "items/dir/two": "v2",
		"dapi/labels": "a=\"x\\\"y\"\nb=\"2\"", "dapi/name": "p", "dapi/mem": "64", "dapi/cpu": "2000"} {
		vol, rel, _ := strings.Cut(f, "/")
		if got := read(t, filepath.Join(mounts[vol].HostPath, rel)); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	if fi, _ := os.Stat(filepath.Join(mounts["items"].HostPath, "dir/two")); fi.Mode().Perm() != 0o400 {
		t.Errorf("item mode = %v, want 0400", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(mounts["items"].HostPath, "k1")); !os.IsNotExist(err) {
		t.Errorf("items must limit the keys: %v", err)
	}

	// An update reaches the files on the next refresh; the volume of a torn-down pod is gone.
	cm.Data["k1"] = "changed"
	if _, err := client.CoreV1().ConfigMaps("ns").Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod.Labels["b"] = "3"
	if _, err := m.SetUp(context.Background(), pod, nil); err != nil {
		t.Fatal(err)
	}
	m.RefreshAll(context.Background())
	if got := read(t, filepath.Join(all.HostPath, "k1")); got != "changed" {
		t.Errorf("after refresh k1 = %q", got)
	}
	if got := read(t, filepath.Join(mounts["dapi"].HostPath, "labels")); !strings.Contains(got, `b="3"`) {
		t.Errorf("after refresh labels = %q", got)
	}
	if err := m.TearDown(context.Background(), pod.UID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(all.HostPath); !os.IsNotExist(err) {
		t.Errorf("volume left after tear-down: %v", err)
	}
	if m.Exist(pod.UID) {
		t.Errorf("Exist after tear-down")
	}
	// Folders left by an earlier run count as volumes (the orphan cgroup sweep waits).
	if err := os.MkdirAll(filepath.Join(m.PodDir(pod.UID), "volumes", "kubernetes.io~empty-dir", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !m.Exist(pod.UID) {
		t.Errorf("Exist with a volume folder on disk: false")
	}
}

func TestSetUpErrors(t *testing.T) {
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "ns"}, Data: map[string]string{"k": "v"}}
	for _, tc := range []struct {
		vol  v1.Volume
		want string
	}{
		{v1.Volume{Name: "missing", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "nope"}}}},
			`MountVolume.SetUp failed for volume "missing" : configmap "nope" not found`},
		{v1.Volume{Name: "key", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}, Items: []v1.KeyToPath{{Key: "x", Path: "x"}}}}},
			`MountVolume.SetUp failed for volume "key" : configmap references non-existent config key: x`},
		{v1.Volume{Name: "sec", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "nope"}}},
			`MountVolume.SetUp failed for volume "sec" : secret "nope" not found`},
		{v1.Volume{Name: "csi", VolumeSource: v1.VolumeSource{CSI: &v1.CSIVolumeSource{Driver: "x"}}},
			`MountVolume.SetUp failed for volume "csi" : CSI volumes are not supported on this node`},
		{v1.Volume{Name: "trav", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}, Items: []v1.KeyToPath{{Key: "k", Path: "../../etc/x"}}}}},
			`invalid file path "../../etc/x"`},
	} {
		m, _, _ := newTestManager(t, cm)
		_, err := m.SetUp(context.Background(), testPod(tc.vol), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.vol.Name, err, tc.want)
		}
	}
}

func TestServiceAccountTokenRotation(t *testing.T) {
	m, client, clk := newTestManager(t)
	var requests []*authv1.TokenRequest
	client.PrependReactor("create", "serviceaccounts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" {
			return false, nil, nil
		}
		tr := a.(k8stesting.CreateAction).GetObject().(*authv1.TokenRequest).DeepCopy()
		requests = append(requests, tr)
		tr.Status.Token = "token-" + string(rune('0'+len(requests)))
		tr.Status.ExpirationTimestamp = metav1.NewTime(clk.Now().Add(time.Duration(*tr.Spec.ExpirationSeconds) * time.Second))
		return true, tr, nil
	})
	exp := int64(3600)
	pod := testPod(v1.Volume{Name: "kube-api-access", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
		{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Path: "token", Audience: "api", ExpirationSeconds: &exp}},
	}}}})
	pod.Spec.ServiceAccountName = "robot"
	mounts, err := m.SetUp(context.Background(), pod, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.TearDown(context.Background(), pod.UID) })
	tokenFile := filepath.Join(mounts["kube-api-access"].HostPath, "token")
	if got := read(t, tokenFile); got != "token-1" {
		t.Fatalf("token = %q", got)
	}
	r := requests[0]
	if r.Spec.BoundObjectRef == nil || r.Spec.BoundObjectRef.Kind != "Pod" || r.Spec.BoundObjectRef.UID != pod.UID || r.Spec.Audiences[0] != "api" {
		t.Fatalf("token request not bound to the pod: %+v", r.Spec)
	}
	clk.Step(40 * time.Minute) // 67% of the lifetime: kept
	m.RefreshAll(context.Background())
	if len(requests) != 1 {
		t.Fatalf("token renewed too early (%d requests)", len(requests))
	}
	clk.Step(10 * time.Minute) // 83%: renewed
	m.RefreshAll(context.Background())
	if len(requests) != 2 || read(t, tokenFile) != "token-2" {
		t.Fatalf("token not renewed past 80%% of its lifetime: %d requests, file %q", len(requests), read(t, tokenFile))
	}
}

// A refresh round reads a configMap or secret once for all the pods that mount it; set-up
// and the next round read it afresh, so an update reaches every pod.
func TestRefreshReadsEachObjectOncePerRound(t *testing.T) {
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "shared", Namespace: "ns"}, Data: map[string]string{"k": "v1"}}
	sec := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns"}, Data: map[string][]byte{"k": []byte("s1")}}
	m, client, _ := newTestManager(t, cm, sec)
	gets := func(resource string) int {
		n := 0
		for _, a := range client.Actions() {
			if a.GetVerb() == "get" && a.GetResource().Resource == resource {
				n++
			}
		}
		return n
	}
	var pods []*v1.Pod
	for i := range 3 {
		p := testPod(
			v1.Volume{Name: "cm", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "shared"}}}},
			v1.Volume{Name: "sec", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "s"}}},
		)
		p.UID = types.UID(fmt.Sprintf("uid-%d", i))
		if _, err := m.SetUp(context.Background(), p, nil); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.TearDown(context.Background(), p.UID) })
		pods = append(pods, p)
	}
	if c, s := gets("configmaps"), gets("secrets"); c != 3 || s != 3 {
		t.Fatalf("set-up of 3 pods read the configMap %d and the secret %d times, want 3 each", c, s)
	}
	cm.Data["k"] = "v2"
	if _, err := client.CoreV1().ConfigMaps("ns").Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	m.RefreshAll(context.Background())
	if c, s := gets("configmaps"), gets("secrets"); c != 4 || s != 4 {
		t.Errorf("one refresh round read the configMap %d and the secret %d times in all, want 4 each", c, s)
	}
	for _, p := range pods {
		if got := read(t, filepath.Join(m.PodDir(p.UID), "volumes/kubernetes.io~configmap/cm/k")); got != "v2" {
			t.Errorf("pod %s sees %q after the refresh, want v2", p.UID, got)
		}
	}
	m.RefreshAll(context.Background())
	if c := gets("configmaps"); c != 5 {
		t.Errorf("the next round must read again: %d reads in all, want 5", c)
	}
}

// TestRefreshSkipsBusyPod: a pod whose volumes are still being set up (a CSI driver may
// take up to its timeout) does not hold back the refresh of the other pods' volumes.
func TestRefreshSkipsBusyPod(t *testing.T) {
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "ns"}, Data: map[string]string{"k": "v1"}}
	m, client, _ := newTestManager(t, cm)
	pod := testPod(v1.Volume{Name: "cm", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}}}})
	mounts, err := m.SetUp(context.Background(), pod, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.TearDown(context.Background(), pod.UID) })
	busy := &podVolumes{mounts: map[string]Mount{}}
	busy.work.Lock() // a set-up in progress
	defer busy.work.Unlock()
	m.mu.Lock()
	m.pods["busy"] = busy
	m.mu.Unlock()
	cm.Data["k"] = "v2"
	if _, err := client.CoreV1().ConfigMaps("ns").Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { m.RefreshAll(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RefreshAll waited for the busy pod")
	}
	if got := read(t, filepath.Join(mounts["cm"].HostPath, "k")); got != "v2" {
		t.Errorf("the other pod's configMap = %q after the refresh, want v2", got)
	}
}

// A running pod's new labels and annotations reach its downward API files through Update
// at once, with no set-up; an Update that changes neither waits for the next refresh (the
// changed configMap is not read), and an Update of a pod with no volumes set up does nothing.
func TestUpdateRerendersOnMetadataChange(t *testing.T) {
	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "ns"}, Data: map[string]string{"k": "v1"}}
	m, client, _ := newTestManager(t, cm)
	pod := testPod(
		v1.Volume{Name: "cm", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}}}},
		v1.Volume{Name: "dapi", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "annotations", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.annotations"}},
		}}}},
	)
	other := pod.DeepCopy()
	other.UID = "uid-2"
	m.Update(context.Background(), other) // nothing set up for it: no volumes appear
	if m.Exist(other.UID) {
		t.Fatalf("Update set up volumes of a pod that had none")
	}
	mounts, err := m.SetUp(context.Background(), pod, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.TearDown(context.Background(), pod.UID) })
	labels := filepath.Join(mounts["dapi"].HostPath, "labels")
	annotations := filepath.Join(mounts["dapi"].HostPath, "annotations")
	cmFile := filepath.Join(mounts["cm"].HostPath, "k")

	cm.Data["k"] = "v2"
	if _, err := client.CoreV1().ConfigMaps("ns").Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	same := pod.DeepCopy()
	same.Spec.ActiveDeadlineSeconds = new(int64) // a change that no downward API file shows
	m.Update(context.Background(), same)
	if got := read(t, cmFile); got != "v1" {
		t.Errorf("configMap re-read on an update that changed no labels or annotations: %q", got)
	}

	updated := pod.DeepCopy()
	updated.Labels["c"] = "3"
	updated.Annotations = map[string]string{"note": "new"}
	m.Update(context.Background(), updated)
	if got := read(t, labels); !strings.Contains(got, `c="3"`) {
		t.Errorf("labels after Update = %q", got)
	}
	if got := read(t, annotations); got != `note="new"` {
		t.Errorf("annotations after Update = %q", got)
	}
	if got := read(t, cmFile); got != "v2" {
		t.Errorf("configMap after the re-render = %q", got)
	}
}
