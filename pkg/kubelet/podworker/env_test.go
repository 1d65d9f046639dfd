package podworker

import (
	"context"
	"errors"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

type fakeSource struct {
	cms  map[string]map[string]string
	secs map[string]map[string][]byte
	svcs []*v1.Service
}

func (f fakeSource) configMap(ns, name string) (map[string]string, error) {
	if d, ok := f.cms[name]; ok {
		return d, nil
	}
	return nil, errors.New(`configmaps "` + name + `" not found`)
}

func (f fakeSource) allocatable() v1.ResourceList {
	return v1.ResourceList{v1.ResourceCPU: resource.MustParse("2"), v1.ResourceMemory: resource.MustParse("4Gi")}
}

func (f fakeSource) services(string, bool) ([]*v1.Service, error) { return f.svcs, nil }

func (f fakeSource) secret(ns, name string) (map[string][]byte, error) {
	if d, ok := f.secs[name]; ok {
		return d, nil
	}
	return nil, errors.New(`secrets "` + name + `" not found`)
}

func TestResolveEnv(t *testing.T) {
	src := fakeSource{cms: map[string]map[string]string{"cm": {"k": "from-cm", "x": "1"}}, secs: map[string]map[string][]byte{"s": {"pw": []byte("hunter2")}}}
	yes := true
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u", Labels: map[string]string{"app": "a"}}, Spec: v1.PodSpec{NodeName: "n1"}}
	c := &v1.Container{Name: "c",
		Resources: v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceMemory: resource.MustParse("64Mi")}, Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m")}},
		EnvFrom: []v1.EnvFromSource{{Prefix: "P_", ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}}},
			{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}, Optional: &yes}}},
		Env: []v1.EnvVar{
			{Name: "A", Value: "x"}, {Name: "B", Value: "$(A)-$(P_k)-$$(A)-$(NOPE)"},
			{Name: "POD", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "APP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "NODE", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
			{Name: "IP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "MEM", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
			{Name: "CPU", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "requests.cpu", Divisor: resource.MustParse("1m")}}},
			{Name: "CMK", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}, Key: "k"}}},
			{Name: "OPT", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}, Key: "missing", Optional: &yes}}},
			{Name: "PW", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "s"}, Key: "pw"}}},
			{Name: "P_x", Value: "overrides envFrom"},
		}}
	kvs, err := resolveEnvWith(src, pod, c, []string{"10.0.0.9"}, []string{"10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range kvs {
		got = append(got, kv.Key+"="+string(kv.Value))
	}
	want := "P_k=from-cm P_x=overrides envFrom A=x B=x-from-cm-$(A)-$(NOPE) POD=p APP=a NODE=n1 IP=10.0.0.9 MEM=64 CPU=250 CMK=from-cm PW=hunter2"
	if strings.Join(got, " ") != want {
		t.Errorf("\n got %s\nwant %s", strings.Join(got, " "), want)
	}

	for _, tc := range []struct {
		env  v1.EnvVar
		want string
	}{
		{v1.EnvVar{Name: "X", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}, Key: "nope"}}}, "couldn't find key nope in ConfigMap ns/cm"},
		{v1.EnvVar{Name: "X", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "s"}, Key: "nope"}}}, "couldn't find key nope in Secret ns/s"},
		{v1.EnvVar{Name: "X", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}, Key: "k"}}}, `secrets "absent" not found`},
		{v1.EnvVar{Name: "X", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "spec.bogus"}}}, "unsupported fieldPath: spec.bogus"},
	} {
		_, err := resolveEnvWith(src, pod, &v1.Container{Name: "c", Env: []v1.EnvVar{tc.env}}, nil, nil)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v: err %v, want %q", tc.env.ValueFrom, err, tc.want)
		}
	}
}

// A static pod does not wait for the service cache (it may be the API server the cache
// would list from: kubeadm's control plane); an API pod waits, then fails with upstream's
// message.
func TestServicesWaitOnlyForAPIPods(t *testing.T) {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	if err := idx.Add(&v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"}}); err != nil {
		t.Fatal(err)
	}
	w := &Workers{cfg: Config{Services: corelisters.NewServiceLister(idx), ServicesSynced: func() bool { return false }}}
	ctx, cancel := context.WithCancel(context.Background())
	src := apiEnvSource{w, ctx}
	svcs, err := src.services("kube-system", false)
	if err != nil || len(svcs) != 1 {
		t.Fatalf("static pod: services %v, %v; want the cached kubernetes service at once", svcs, err)
	}
	cancel() // the wait ends with the context instead of after 5 s
	if _, err := src.services("kube-system", true); err == nil || err.Error() != "services have not yet been read at least once, cannot construct envvars" {
		t.Fatalf("API pod with an unsynced cache: %v", err)
	}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "etcd", Namespace: "kube-system", Annotations: map[string]string{"kubernetes.io/config.source": "file"}}}
	if _, err := resolveEnvWith(src, pod, &v1.Container{Name: "etcd"}, nil, nil); err != nil {
		t.Fatalf("static pod env: %v", err)
	}
}
