package node

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func img(id string, size uint64, digests, tags []string) *runtimeapi.Image {
	return &runtimeapi.Image{Id: id, Size: size, RepoDigests: digests, RepoTags: tags}
}

func TestNodeImages(t *testing.T) {
	small := img("sha256:a", 10, []string{"r/small@sha256:1"}, []string{"r/small:1"})
	big := img("sha256:b", 300, nil, []string{"r/big:1"})
	tieLow := img("sha256:c", 50, nil, []string{"r/c:1"})
	tieHigh := img("sha256:d", 50, nil, []string{"r/d:1"})
	many := img("sha256:e", 5, []string{"m@sha256:1", "m@sha256:2"}, []string{"m:1", "m:2", "m:3", "m:4"})
	untagged := img("sha256:f", 1, nil, nil)
	all := []*runtimeapi.Image{small, tieLow, big, many, tieHigh, untagged}
	everything := []v1.ContainerImage{
		{Names: []string{"r/big:1"}, SizeBytes: 300},
		{Names: []string{"r/d:1"}, SizeBytes: 50},
		{Names: []string{"r/c:1"}, SizeBytes: 50},
		{Names: []string{"r/small@sha256:1", "r/small:1"}, SizeBytes: 10},
		{Names: []string{"m@sha256:1", "m@sha256:2", "m:1", "m:2", "m:3"}, SizeBytes: 5},
		{SizeBytes: 1},
	}
	for _, tc := range []struct {
		name string
		max  int32
		want []v1.ContainerImage
	}{
		{"every image, largest first, equal sizes by ID descending; digests before tags, at most five names", -1, everything},
		{"a maximum above the count", 50, everything},
		{"cut at the maximum", 2, everything[:2]},
		{"zero reports none", 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := append([]*runtimeapi.Image(nil), all...)
			got := NodeImages(all, tc.max)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("images (-want +got):\n%s", diff)
			}
			if !cmp.Equal(before, all, cmp.Comparer(func(a, b *runtimeapi.Image) bool { return a == b })) {
				t.Fatal("NodeImages reordered its input")
			}
		})
	}
	if names := many.RepoDigests; len(names) != 2 {
		t.Fatalf("NodeImages changed an image's digests: %v", names)
	}
}

func TestImageListRefreshesOncePerPeriod(t *testing.T) {
	var calls int
	var fail bool
	current := []*runtimeapi.Image{img("sha256:a", 10, nil, []string{"a:1"})}
	l := imageList{max: 50, list: func(context.Context) ([]*runtimeapi.Image, error) {
		calls++
		if fail {
			return nil, errors.New("runtime down")
		}
		return current, nil
	}}
	ctx, t0 := context.Background(), time.Unix(1000, 0)

	fail = true
	if got, known := l.get(ctx, t0); known || got != nil {
		t.Fatalf("before any list: %v known=%v, want nothing known", got, known)
	}
	fail = false
	got, known := l.get(ctx, t0.Add(10*time.Second)) // a failure is retried at the next round
	if !known || len(got) != 1 || calls != 2 {
		t.Fatalf("after a list: %v known=%v calls=%d", got, known, calls)
	}
	current = append(current, img("sha256:b", 20, nil, []string{"b:1"}))
	if got, _ := l.get(ctx, t0.Add(39*time.Second)); len(got) != 1 || calls != 2 {
		t.Fatalf("within the period: %v, %d calls; want the cached list and no call", got, calls)
	}
	if got, _ := l.get(ctx, t0.Add(40*time.Second)); len(got) != 2 || got[0].Names[0] != "b:1" || calls != 3 {
		t.Fatalf("after the period: %v, %d calls", got, calls)
	}
	fail = true
	if got, known := l.get(ctx, t0.Add(80*time.Second)); !known || len(got) != 2 {
		t.Fatalf("a failed list must keep the last one: %v known=%v", got, known)
	}
}

func TestBuildStatusImages(t *testing.T) {
	old := v1.NodeStatus{Images: []v1.ContainerImage{{Names: []string{"old:1"}, SizeBytes: 1}}}
	if s := BuildStatus(inputs(), old, metav1.Now()); !cmp.Equal(s.Images, old.Images) {
		t.Fatalf("images unknown: %v, want the API's %v", s.Images, old.Images)
	}
	in := inputs()
	in.Images, in.ImagesKnown = []v1.ContainerImage{{Names: []string{"new:1"}, SizeBytes: 2}}, true
	if s := BuildStatus(in, old, metav1.Now()); !cmp.Equal(s.Images, in.Images) {
		t.Fatalf("images known: %v, want %v", s.Images, in.Images)
	}
	if !StatusChanged(old, BuildStatus(in, old, metav1.Now())) {
		t.Fatal("a changed image list must count as a status change (it is posted)")
	}
}
