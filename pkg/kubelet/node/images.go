package node

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// maxNamesPerImage is upstream's MaxNamesPerImageInNodeStatus.
const maxNamesPerImage = 5

// NodeImages is status.images as upstream's Images setter and image cache make it: the
// largest images first (equal sizes by ID, descending), at most max of them (-1: all),
// each named by its digests and then its tags, at most five names.
func NodeImages(imgs []*runtimeapi.Image, max int32) []v1.ContainerImage {
	imgs = slices.Clone(imgs)
	slices.SortStableFunc(imgs, func(a, b *runtimeapi.Image) int {
		if a.GetSize() != b.GetSize() {
			return cmp.Compare(b.GetSize(), a.GetSize())
		}
		return strings.Compare(b.GetId(), a.GetId())
	})
	if max > -1 && int(max) < len(imgs) {
		imgs = imgs[:max]
	}
	var out []v1.ContainerImage
	for _, img := range imgs {
		names := append(slices.Clone(img.GetRepoDigests()), img.GetRepoTags()...)
		if len(names) > maxNamesPerImage {
			names = names[:maxNamesPerImage]
		}
		out = append(out, v1.ContainerImage{Names: names, SizeBytes: int64(img.GetSize())})
	}
	return out
}

// imageListPeriod is how often upstream's image manager refreshes the list the node
// status reports.
const imageListPeriod = 30 * time.Second

// imageList is that cache, refreshed by the status rounds themselves (no goroutine of its
// own): the runtime's images are listed at most once a period, and a failed list keeps
// the last one, as upstream's.
type imageList struct {
	list   func(context.Context) ([]*runtimeapi.Image, error)
	max    int32
	listed time.Time
	images []v1.ContainerImage
	known  bool
}

// get returns status.images as of the last successful list (known false: none yet).
func (l *imageList) get(ctx context.Context, now time.Time) ([]v1.ContainerImage, bool) {
	if l.list == nil || (l.known && now.Sub(l.listed) < imageListPeriod) {
		return l.images, l.known
	}
	imgs, err := l.list(ctx)
	if err != nil {
		klog.FromContext(ctx).Info("Failed to update image list", "err", err)
		return l.images, l.known
	}
	l.images, l.known, l.listed = NodeImages(imgs, l.max), true, now
	return l.images, l.known
}
