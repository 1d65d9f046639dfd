package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// gcUnusedImage is imported into the node's runtime and used by nothing.
const gcUnusedImage = "docker.io/minikubelet/gc-unused:v1"

// Image garbage collection on a node whose thresholds always call for it (high 1%, low
// 0%): unused images are removed, the image of a running pod and the pinned sandbox image
// are kept, and freeing down to 0% fails with upstream's FreeDiskSpaceFailed node event.
// The node runs a containerd of its own (collection removes every unused image of its
// runtime), collects every 2s (the hidden --image-gc-period; upstream's period is 5m) and
// keeps images younger than 20s, time for the pod to start using busybox.
func TestResourcesImageGC(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	rt, err := bed.StartNodeRuntime("imagegc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Stop() })
	img, err := testbed.NewImage([]testbed.File{{Path: "unused", Data: []byte("garbage"), Mode: 0o644}}, ggcrv1.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := testbed.ImportImages(rt.Socket(), filepath.Join(t.TempDir(), "unused.tar"), map[string]ggcrv1.Image{gcUnusedImage: img}); err != nil {
		t.Fatal(err)
	}
	_, images, closeCRI, err := testbed.CRIClients(rt.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = closeCRI() })
	pinSandboxImage(ctx, t, rt.Socket(), images)

	k, err := bed.StartMinikubeletWithConfig("imagegc", "imageGCHighThresholdPercent: 1\nimageGCLowThresholdPercent: 0\nimageMinimumGCAge: 20s\n",
		runtimeEndpointFlag+rt.Endpoint(), "--image-gc-period=2s")
	if err != nil {
		t.Fatal(err)
	}
	stopWhenDone(t, k)
	watchNode(ctx, t, k.NodeName, isReady)
	pod := createPod(ctx, t, newPod(k.NodeName, "sleep", "3600"))
	watchPod(ctx, t, pod, "running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })

	waitImage(ctx, t, images, gcUnusedImage, false)
	waitImage(ctx, t, images, testbed.TestAppImage, false)
	for _, keep := range []string{testbed.BusyboxImage, testbed.PauseImage} {
		if !imagePresent(ctx, t, images, keep) {
			t.Errorf("%s removed; want it kept", keep)
		}
	}
	waitNodeEventReason(ctx, t, k.NodeName, "FreeDiskSpaceFailed", "Insufficient free disk space on the node's image filesystem (")
}

// pinSandboxImage makes sure the runtime pins its sandbox image: containerd pins the
// image when it pulls it through CRI, not when it is imported as the bed does, so the
// test gives it containerd's pin label then.
func pinSandboxImage(ctx context.Context, t *testing.T, socket string, images runtimeapi.ImageServiceClient) {
	t.Helper()
	st, err := images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: testbed.PauseImage}})
	if err != nil || st.GetImage() == nil {
		t.Fatalf("sandbox image %s: %v", testbed.PauseImage, err)
	}
	if st.GetImage().GetPinned() {
		return
	}
	out, err := exec.CommandContext(ctx, "ctr", "--address", socket, "-n", "k8s.io", "images", "label", testbed.PauseImage,
		"io.cri-containerd.pinned=pinned").CombinedOutput()
	if err != nil {
		t.Fatalf("ctr images label: %v\n%s", err, out)
	}
	for {
		st, err := images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: testbed.PauseImage}})
		if err == nil && st.GetImage().GetPinned() {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("sandbox image never reported pinned: %v %v", st, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func imagePresent(ctx context.Context, t *testing.T, images runtimeapi.ImageServiceClient, ref string) bool {
	t.Helper()
	st, err := images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatalf("image status %s: %v", ref, err)
	}
	return st.GetImage() != nil
}

// waitImage waits until image ref is present (or gone).
func waitImage(ctx context.Context, t *testing.T, images runtimeapi.ImageServiceClient, ref string, present bool) {
	t.Helper()
	for imagePresent(ctx, t, images, ref) != present {
		select {
		case <-ctx.Done():
			t.Fatalf("image %s: present %v, want %v", ref, !present, present)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitNodeEventReason waits for a kubelet event of reason on node whose message begins
// with prefix.
func waitNodeEventReason(ctx context.Context, t *testing.T, node, reason, prefix string) {
	t.Helper()
	var seen []string
	for {
		evs, err := bed.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.name", node).String()})
		if err != nil {
			t.Fatal(err)
		}
		seen = seen[:0]
		for _, e := range evs.Items {
			if e.InvolvedObject.Kind == "Node" && e.Reason == reason && e.Type == v1.EventTypeWarning && strings.HasPrefix(e.Message, prefix) {
				return
			}
			seen = append(seen, e.Reason+": "+e.Message)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no node event %s %q...; node events: %q", reason, prefix, seen)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
