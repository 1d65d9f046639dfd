package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// imageVolumeScript checks, inside the container, the bed's busybox image mounted at /img
// and its etc folder (subPath) at /etc-img, both read-only; it exits non-zero naming the
// first check that failed.
const imageVolumeScript = `test -x /img/bin/busybox || { echo no-busybox; exit 2; }
/img/bin/busybox true || { echo busybox-does-not-run; exit 3; }
grep -q '^root:x:0:0:' /etc-img/passwd || { echo no-passwd; exit 4; }
if touch /img/written 2>/dev/null; then echo img-writable; exit 5; fi
if touch /etc-img/written 2>/dev/null; then echo subpath-writable; exit 6; fi
echo image-volume-ok`

// TestRuntimeImageVolume: volumes[].image (ImageVolume, GA in v1.37). On a runtime that
// mounts images (containerd 2.x) the container sees the image's files, a subPath, and
// cannot write; on containerd 1.6, which ignores the CRI mount's image, the runtime's
// refusal of the empty host path surfaces as CreateContainerError, as upstream (no runtime
// check) does: the container never runs without its volume. Either way an image volume
// whose image cannot be had holds back only the containers mounting it, with upstream's
// reasons, the pull's events on the pod and "Error: <reason>" on the container.
func TestRuntimeImageVolume(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	k := startKubelet(t, "imgvol")
	node := watchNode(ctx, t, k.NodeName, isReady)
	version := node.Status.NodeInfo.ContainerRuntimeVersion
	t.Logf("runtime %s", version)

	pod := imageVolumePod(k.NodeName, testbed.BusyboxImage, v1.PullIfNotPresent, "sh", "-c", imageVolumeScript)
	pod.Spec.Containers = pod.Spec.Containers[:1] // the pod ends with the checks
	pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts,
		v1.VolumeMount{Name: "img", MountPath: "/etc-img", SubPath: "etc"})
	p := createPod(ctx, t, pod)
	if strings.HasPrefix(version, "containerd://1.") {
		p = watchPod(ctx, t, p, "CreateContainerError", waitingIn("main", "CreateContainerError"))
		msg := containerStatus(p, "main").State.Waiting.Message
		// containerd 1.6 bind-mounts the (empty) host path and cannot create it.
		if !strings.Contains(msg, `mkdir ""`) {
			t.Errorf("CreateContainerError message %q, want containerd's refusal of the empty host path", msg)
		}
		waitPodEvent(ctx, t, p, `spec.containers{main} Warning Failed Error: `)
	} else {
		p = watchPod(ctx, t, p, "Succeeded or Failed", func(p *v1.Pod) bool {
			return p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed
		})
		logs, _ := podLogs(ctx, p, &v1.PodLogOptions{Container: "main"})
		if p.Status.Phase != v1.PodSucceeded || strings.TrimSpace(logs) != "image-volume-ok" {
			t.Errorf("image volume checks: %s; log %q", describe(p), logs)
		}
	}
	// The volume's image was present: the pod (not a container) got the Pulled event.
	waitPodEvent(ctx, t, p, fmt.Sprintf(` Normal Pulled Container image %q already present on machine`, testbed.BusyboxImage))

	missing := bed.Registry.Host + "/e2e/imgvol:missing"
	t.Run("IfNotPresent", func(t *testing.T) {
		p := createPod(ctx, t, imageVolumePod(k.NodeName, missing, v1.PullIfNotPresent, "sleep", "3600"))
		p = watchPod(ctx, t, p, "ErrImagePull", waitingIn("main", "ErrImagePull"))
		p = watchPod(ctx, t, p, "ImagePullBackOff", waitingIn("main", "ImagePullBackOff"))
		if msg := containerStatus(p, "main").State.Waiting.Message; !strings.HasPrefix(msg, fmt.Sprintf("Back-off pulling image %q: ErrImagePull: ", missing)) {
			t.Errorf("ImagePullBackOff message %q", msg)
		}
		watchPod(ctx, t, p, "other running", containerRunning("other"))
		for _, want := range []string{
			fmt.Sprintf(` Normal Pulling Pulling image %q`, missing),
			fmt.Sprintf(` Warning Failed Failed to pull image %q: `, missing),
			fmt.Sprintf(` Normal BackOff Back-off pulling image %q`, missing),
			`spec.containers{main} Warning Failed Error: ErrImagePull`,
			`spec.containers{main} Warning Failed Error: ImagePullBackOff`,
		} {
			waitPodEvent(ctx, t, p, want)
		}
	})
	t.Run("Never", func(t *testing.T) {
		p := createPod(ctx, t, imageVolumePod(k.NodeName, missing, v1.PullNever, "sleep", "3600"))
		p = watchPod(ctx, t, p, "ErrImageNeverPull", waitingIn("main", "ErrImageNeverPull"))
		if msg := containerStatus(p, "main").State.Waiting.Message; msg != fmt.Sprintf("Container image %q is not present with pull policy of Never", missing) {
			t.Errorf("ErrImageNeverPull message %q", msg)
		}
		watchPod(ctx, t, p, "other running", containerRunning("other"))
		waitPodEvent(ctx, t, p, fmt.Sprintf(` Warning ErrImageNeverPull Container image %q is not present with pull policy of Never`, missing))
		waitPodEvent(ctx, t, p, `spec.containers{main} Warning Failed Error: ErrImageNeverPull`)
	})
}

// imageVolumePod has an image volume "img" of ref mounted at /img by container "main"
// (running cmd), and a container "other" that mounts nothing.
func imageVolumePod(node, ref string, policy v1.PullPolicy, cmd ...string) *v1.Pod {
	p := newPod(node, cmd...)
	p.Spec.RestartPolicy = v1.RestartPolicyNever
	p.Spec.Volumes = []v1.Volume{{Name: "img", VolumeSource: v1.VolumeSource{Image: &v1.ImageVolumeSource{Reference: ref, PullPolicy: policy}}}}
	p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "img", MountPath: "/img"}}
	p.Spec.Containers = append(p.Spec.Containers, v1.Container{Name: "other", Image: testbed.BusyboxImage,
		ImagePullPolicy: v1.PullIfNotPresent, Command: []string{"sleep", "3600"}})
	return p
}

// waitPodEvent waits for an event of the pod whose "<fieldPath> <type> <reason> <message>"
// starts with prefix (a leading space: an event on the pod itself).
func waitPodEvent(ctx context.Context, t *testing.T, p *v1.Pod, prefix string) {
	t.Helper()
	var lines []string
	for {
		evs, err := bed.Client.CoreV1().Events(p.Namespace).List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", string(p.UID)).String()})
		if err == nil {
			lines = lines[:0]
			for _, e := range evs.Items {
				lines = append(lines, strings.Join([]string{e.InvolvedObject.FieldPath, e.Type, e.Reason, e.Message}, " "))
			}
			if slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) }) {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no event %q; events:\n%s", prefix, strings.Join(lines, "\n"))
		case <-time.After(300 * time.Millisecond):
		}
	}
}
