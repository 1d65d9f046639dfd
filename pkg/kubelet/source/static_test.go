package source

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

const manifest = `apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
`

func TestDecodeStaticPod(t *testing.T) {
	p, err := DecodeStaticPod([]byte(manifest), "/etc/kubernetes/manifests/web.yaml", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "web-node-1" || p.Namespace != "default" || p.Spec.NodeName != "node-1" || p.UID == "" {
		t.Errorf("identity: %s/%s node %s uid %s", p.Namespace, p.Name, p.Spec.NodeName, p.UID)
	}
	if p.Annotations[AnnotationConfigHash] != string(p.UID) || !IsStatic(p) {
		t.Errorf("annotations %v", p.Annotations)
	}
	c := p.Spec.Containers[0]
	if c.ImagePullPolicy != v1.PullAlways || c.TerminationMessagePath != "/dev/termination-log" || p.Spec.RestartPolicy != v1.RestartPolicyAlways {
		t.Errorf("defaults: pull %s termination %s restart %s", c.ImagePullPolicy, c.TerminationMessagePath, p.Spec.RestartPolicy)
	}
	same, _ := DecodeStaticPod([]byte(manifest), "/etc/kubernetes/manifests/web.yaml", "node-1")
	edited, _ := DecodeStaticPod([]byte(strings.Replace(manifest, "3600", "3601", 1)), "/etc/kubernetes/manifests/web.yaml", "node-1")
	if same.UID != p.UID || edited.UID == p.UID {
		t.Errorf("UID must follow the content: same %s edited %s first %s", same.UID, edited.UID, p.UID)
	}
	for _, bad := range []struct{ data, want string }{
		{"{{{ not yaml", "not a pod manifest"},
		{"apiVersion: v1\nkind: Pod\nspec:\n  containers: [{name: a, image: b}]\n", "metadata.name: Required value"},
		{"apiVersion: v1\nkind: Service\nmetadata: {name: s}\n", `kind "Service", want Pod`},
		{"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n", "spec.containers: Required value"},
		{"", "no pod in the file"},
		{"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: a, image: b}]\n  dnsConfig: {options: [{value: '1'}]}\n",
			"invalid pod: spec.dnsConfig.options[0]: Required value: must not be empty"},
		{"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: a, image: b}]\n  dnsPolicy: None\n",
			"invalid pod: spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"},
	} {
		_, err := DecodeStaticPod([]byte(bad.data), "/m/bad.yaml", "n")
		if err == nil || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), "/m/bad.yaml") {
			t.Errorf("%q: err %v, want %q with the file name", bad.data, err, bad.want)
		}
	}
}

type recorder struct{ updates, removes []string }

func (r *recorder) Update(p *v1.Pod) { r.updates = append(r.updates, p.Name+"@"+string(p.UID)[:6]) }
func (r *recorder) Remove(p *v1.Pod) { r.removes = append(r.removes, p.Name+"@"+string(p.UID)[:6]) }

func TestStaticScan(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("web.yaml", manifest)
	write("broken.yaml", "{{{")
	write(".web.yaml.swp", "junk")
	r := &recorder{}
	s := NewStatic(dir, "n", 0, r)
	ctx := context.Background()
	s.scan(ctx)
	if !s.HasSynced() || len(r.updates) != 1 || len(r.removes) != 0 || len(s.Pods()) != 1 {
		t.Fatalf("first scan: updates %v removes %v", r.updates, r.removes)
	}
	s.scan(ctx)
	if len(r.updates) != 1 {
		t.Fatalf("an unchanged folder delivered again: %v", r.updates)
	}
	write("web.yaml", strings.Replace(manifest, "3600", "60", 1))
	s.scan(ctx)
	if len(r.removes) != 1 || len(r.updates) != 2 || r.removes[0] != r.updates[0] {
		t.Fatalf("edit must replace the pod: updates %v removes %v", r.updates, r.removes)
	}
	os.Remove(filepath.Join(dir, "web.yaml"))
	s.scan(ctx)
	if len(r.removes) != 2 || len(s.Pods()) != 0 {
		t.Fatalf("removed manifest: removes %v", r.removes)
	}
}

func TestMirrorsReconcile(t *testing.T) {
	static, _ := DecodeStaticPod([]byte(manifest), "/m/web.yaml", "n")
	client := fake.NewClientset(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", UID: "node-uid"}})
	var created []types.UID
	list := func() []*v1.Pod {
		l, _ := client.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
		var out []*v1.Pod
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
		return out
	}
	statics := []*v1.Pod{static}
	m := NewMirrors(Mirrors{Client: client, Node: "n", Static: func() []*v1.Pod { return statics }, API: list,
		Created: func(uid types.UID) { created = append(created, uid) }})
	ctx := context.Background()
	m.Reconcile(ctx)
	got := list()
	if len(got) != 1 || got[0].Annotations[AnnotationConfigMirror] != string(static.UID) || got[0].OwnerReferences[0].UID != "node-uid" || len(created) != 1 {
		t.Fatalf("mirror not created right: %+v created %v", got, created)
	}
	// An edited manifest: the old mirror is deleted, and a new one made next round.
	edited, _ := DecodeStaticPod([]byte(strings.Replace(manifest, "3600", "1", 1)), "/m/web.yaml", "n")
	statics = []*v1.Pod{edited}
	m.Reconcile(ctx)
	if len(list()) != 0 {
		t.Fatal("stale mirror kept")
	}
	m.Reconcile(ctx)
	if got := list(); len(got) != 1 || got[0].Annotations[AnnotationConfigMirror] != string(edited.UID) {
		t.Fatalf("new mirror: %+v", got)
	}
	// The static pod gone: its mirror goes too.
	statics = nil
	m.Reconcile(ctx)
	if len(list()) != 0 {
		t.Fatal("mirror of a removed static pod kept")
	}
}
