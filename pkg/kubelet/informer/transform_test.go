package informer

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

func TestStripManagedFields(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{"a": "b"},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}}}
	out, err := StripManagedFields(pod)
	if err != nil {
		t.Fatal(err)
	}
	p := out.(*v1.Pod)
	if p.ManagedFields != nil || p.Name != "p" || p.Labels["a"] != "b" {
		t.Fatalf("got %+v", p.ObjectMeta)
	}
	// Tombstones and objects without metadata pass through.
	if _, err := StripManagedFields(cache.DeletedFinalStateUnknown{Key: "k", Obj: pod}); err != nil {
		t.Fatal(err)
	}
	if out, err := StripManagedFields("not an object"); err != nil || out != "not an object" {
		t.Fatalf("%v %v", out, err)
	}
}
