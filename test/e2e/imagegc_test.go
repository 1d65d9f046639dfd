package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"
	v1 "k8s.io/api/core/v1"
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
//
// As upstream, only the runtime's pin keeps the sandbox image (no container runs it):
// containerd pins images from 1.7 on, so on Debian's containerd 1.6 the sandbox image is
// collected like any unused image, and the test expects that there instead.
func TestResourcesImageGC(t *testing.T) {
	if bed.Runtime() == testbed.RuntimeCRIO {
		t.Skip("the unused image is imported with ctr: containerd only")
	}
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
	runtime, images, closeCRI, err := testbed.CRIClients(rt.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = closeCRI() })
	ver, err := runtime.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	pins := containerdPins(ver.GetRuntimeVersion())
	if pins {
		pinSandboxImage(ctx, t, rt.Socket(), images)
	} else {
		t.Logf("containerd %s does not pin images (1.7 does): the sandbox image is expected to be collected", ver.GetRuntimeVersion())
	}

	k, err := bed.StartMinikubeletWithConfig("imagegc", "imageGCHighThresholdPercent: 1\nimageGCLowThresholdPercent: 0\nimageMinimumGCAge: 20s\n",
		runtimeEndpointFlag+rt.Endpoint(), "--image-gc-period=2s")
	if err != nil {
		t.Fatal(err)
	}
	stopWhenDone(t, k)
	watchNode(ctx, t, k.NodeName, isReady)
	pod := createPod(ctx, t, newPod(k.NodeName, "sleep", "3600"))
	watchPod(ctx, t, pod, "running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })

	gone := []string{gcUnusedImage, testbed.TestAppImage}
	kept := []string{testbed.BusyboxImage}
	if pins {
		kept = append(kept, testbed.PauseImage)
	} else {
		gone = append(gone, testbed.PauseImage)
	}
	for _, ref := range gone {
		waitImage(ctx, t, images, ref, false)
	}
	// A round removes every image it may (0% is never reached): once a round that began
	// after the removals above has ended, nothing more is to go.
	waitGCRounds(ctx, t, k, 2)
	for _, ref := range kept {
		if !imagePresent(ctx, t, images, ref) {
			t.Errorf("%s removed; want it kept", ref)
		}
	}
	waitNodeEventReason(ctx, t, k.NodeName, "FreeDiskSpaceFailed", "Insufficient free disk space on the node's image filesystem (")
}

// containerdPins: the containerd of version v (CRI's RuntimeVersion: "1.6.20~ds1",
// "v2.4.2") reports images labelled io.cri-containerd.pinned as pinned, and labels its
// sandbox image so when it pulls it; containerd 1.7 added both.
func containerdPins(v string) bool {
	var major, minor int
	if _, err := fmt.Sscanf(strings.TrimPrefix(v, "v"), "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major > 1 || major == 1 && minor >= 7
}

// gcRoundEnd is the node's log line at the end of each collection round of this test
// (every round fails: usage never gets down to 0%).
const gcRoundEnd = "Image garbage collection failed"

// waitGCRounds waits until the node's log shows n more collection rounds ended than now.
func waitGCRounds(ctx context.Context, t *testing.T, k *testbed.Kubelet, n int) {
	t.Helper()
	count := func() int {
		b, err := os.ReadFile(k.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(b), gcRoundEnd)
	}
	want := count() + n
	for count() < want {
		select {
		case <-ctx.Done():
			t.Fatalf("node log: fewer than %d more %q lines", n, gcRoundEnd)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// pinSandboxImage pins the sandbox image as containerd does when it pulls it through CRI
// (its io.cri-containerd.pinned label); the bed imports images, which containerd does not
// pin.
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
	for { // CRI learns of the label from containerd's image events
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

// waitNodeEventReason waits for a kubelet warning of reason on node whose message begins
// with prefix.
func waitNodeEventReason(ctx context.Context, t *testing.T, node, reason, prefix string) {
	t.Helper()
	waitNodeEventMatching(ctx, t, node, reason, fmt.Sprintf("%q...", prefix), func(e *v1.Event) bool {
		return e.Type == v1.EventTypeWarning && strings.HasPrefix(e.Message, prefix)
	})
}
