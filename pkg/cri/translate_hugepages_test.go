package cri

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Every huge page size of the machine gets a limit, 0 unless asked for (as upstream's
// GetHugepageLimitsFromResources), so a pod uses no huge pages it did not request.
func TestHugepageLimits(t *testing.T) {
	q := resource.MustParse
	sizes := []string{"2MB", "1GB"}
	for _, tc := range []struct {
		name     string
		pod, ctr v1.ResourceList
		sizes    []string
		want     []*runtimeapi.HugepageLimit
	}{
		{name: "none asked: every size limited to 0", sizes: sizes,
			want: []*runtimeapi.HugepageLimit{{PageSize: "2MB"}, {PageSize: "1GB"}}},
		{name: "machine without huge pages: no limits", ctr: v1.ResourceList{"hugepages-2Mi": q("4Mi")}},
		{name: "container limit", sizes: sizes, ctr: v1.ResourceList{"hugepages-2Mi": q("6Mi"), v1.ResourceMemory: q("1Gi")},
			want: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 6 << 20}, {PageSize: "1GB"}}},
		{name: "pod-level limit, the container's wins", sizes: sizes,
			pod: v1.ResourceList{"hugepages-2Mi": q("8Mi"), "hugepages-1Gi": q("2Gi")}, ctr: v1.ResourceList{"hugepages-2Mi": q("2Mi")},
			want: []*runtimeapi.HugepageLimit{{PageSize: "2MB", Limit: 2 << 20}, {PageSize: "1GB", Limit: 2 << 30}}},
		{name: "a size the machine lacks is not passed", sizes: []string{"2MB"}, ctr: v1.ResourceList{"hugepages-1Gi": q("1Gi")},
			want: []*runtimeapi.HugepageLimit{{PageSize: "2MB"}}},
		{name: "malformed names are ignored", sizes: []string{"2MB"}, ctr: v1.ResourceList{"hugepages-": q("1"), "hugepages-x": q("1"), "hugepages-0": q("1")},
			want: []*runtimeapi.HugepageLimit{{PageSize: "2MB"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &v1.Pod{}
			if tc.pod != nil {
				pod.Spec.Resources = &v1.ResourceRequirements{Limits: tc.pod}
			}
			c := &v1.Container{Name: "c", Resources: v1.ResourceRequirements{Limits: tc.ctr}}
			got := resources(pod, c, tc.sizes, 0).HugepageLimits
			if d := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b *runtimeapi.HugepageLimit) bool {
				return a.GetPageSize() == b.GetPageSize() && a.GetLimit() == b.GetLimit()
			})); d != "" {
				t.Errorf("limits (-want +got):\n%s", d)
			}
		})
	}
}

// Page sizes are named as runc names them (its HugePageSizes).
func TestHugePageSize(t *testing.T) {
	for name, want := range map[v1.ResourceName]string{
		"hugepages-2Mi": "2MB", "hugepages-1Gi": "1GB", "hugepages-64Ki": "64KB", "hugepages-32Mi": "32MB",
		"hugepages-16Gi": "16GB", "hugepages-1000": "1000B", "memory": "", "hugepages-": "",
	} {
		got, ok := HugePageSize(name)
		if got != want || ok != (want != "") {
			t.Errorf("HugePageSize(%s) = %q, %v; want %q", name, got, ok, want)
		}
	}
}
