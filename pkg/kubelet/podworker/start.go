package podworker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"google.golang.org/protobuf/proto"
	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
)

// backOffKey identifies a container's crash back-off: pod, container and spec hash, as
// upstream (a changed spec starts afresh).
func backOffKey(pod *v1.Pod, c *v1.Container) string {
	return fmt.Sprintf("%s_%s_%s_%s_%s", pod.Name, pod.Namespace, pod.UID, c.Name, cri.ContainerHash(c))
}

func (w *Workers) inBackOff(pod *v1.Pod) inBackOffFunc {
	return func(c *v1.Container, last *cri.Container) bool {
		key := backOffKey(pod, c)
		// After a restart of minikubelet the back-off is rebuilt from the restart count the
		// runtime keeps, so it resumes instead of starting again at zero; not for an
		// instance that ran long enough for upstream to reset the back-off.
		if w.crashBack.Get(key) == 0 && last.RestartCount > 0 && last.FinishedAt.Sub(last.StartedAt) < 2*backOffMax {
			for i := 0; i < last.RestartCount && w.crashBack.Get(key) < backOffMax; i++ {
				w.crashBack.Next(key, last.FinishedAt)
			}
		}
		return w.crashBack.IsInBackOffSince(key, last.FinishedAt)
	}
}

func pullKey(pod *v1.Pod, c *v1.Container) string { return string(pod.UID) + "_" + c.Image }

// withDefaultTag adds ":latest" to a reference with neither tag nor digest, as upstream.
// Short names ("busybox", "busybox:1.35") are valid: the runtime completes them.
func withDefaultTag(image string) (string, error) {
	invalid := fmt.Errorf("couldn't parse image name %q: invalid reference format", image)
	if image == "" || strings.TrimSpace(image) != image {
		return "", invalid
	}
	ref, err := name.ParseReference(image, name.WeakValidation)
	if err != nil {
		return "", invalid
	}
	if _, digest := ref.(name.Digest); digest {
		return image, nil
	}
	if last := image[strings.LastIndex(image, "/")+1:]; strings.Contains(last, ":") {
		return image, nil
	}
	return image + ":latest", nil
}

// pullRetryIn: how long until an image pull in back-off may be tried again (0: none).
func (w *Workers) pullRetryIn(pod *v1.Pod, c *v1.Container) time.Duration {
	d := w.pullBack.Get(pullKey(pod, c))
	if d == 0 {
		return 0
	}
	return d
}

// sharedPullKey names a pull that concurrent pulls may share: the same image with the same
// credentials (a pod without the pull secret must not get another pod's result, nor the
// other way round).
func sharedPullKey(image string, auths []*runtimeapi.AuthConfig) string {
	h := sha256.New()
	h.Write([]byte(image))
	for _, a := range auths {
		b, _ := proto.Marshal(a)
		h.Write([]byte{0})
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ensureImage applies the container's imagePullPolicy exactly as written in the spec.
func (w *Workers) ensureImage(ctx context.Context, pod *v1.Pod, c *v1.Container) (string, status.Waiting, error) {
	image, err := withDefaultTag(c.Image)
	if err != nil {
		msg := fmt.Sprintf("Failed to apply default image tag %q: %v", c.Image, err)
		w.event(pod, c, v1.EventTypeWarning, "InspectFailed", "%s", msg)
		return "", status.Waiting{Reason: "InvalidImageName", Message: msg}, fmt.Errorf("%s", msg)
	}
	ref, err := w.cfg.Runtime.ImageRef(ctx, image)
	if err != nil {
		return "", status.Waiting{Reason: "ErrImageInspect", Message: err.Error()}, err
	}
	policy := c.ImagePullPolicy
	if policy == v1.PullNever || policy == v1.PullIfNotPresent {
		if ref != "" {
			w.event(pod, c, v1.EventTypeNormal, "Pulled", "Container image %q already present on machine", c.Image)
			return ref, status.Waiting{}, nil
		}
		if policy == v1.PullNever {
			msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
			w.event(pod, c, v1.EventTypeWarning, "ErrImageNeverPull", "%s", msg)
			return "", status.Waiting{Reason: "ErrImageNeverPull", Message: msg}, fmt.Errorf("%s", msg)
		}
	}
	key := pullKey(pod, c)
	if w.pullBack.IsInBackOffSinceUpdate(key, w.pullBack.Clock.Now()) {
		msg := fmt.Sprintf("Back-off pulling image %q", image)
		w.event(pod, c, v1.EventTypeNormal, "BackOff", "%s", msg)
		if prev, ok := w.pullErrs.Load(key); ok {
			msg = fmt.Sprintf("%s: %s", msg, prev)
		}
		return "", status.Waiting{Reason: "ImagePullBackOff", Message: msg}, fmt.Errorf("%s", msg)
	}
	w.pullErrs.Delete(key)
	w.event(pod, c, v1.EventTypeNormal, "Pulling", "Pulling image %q", image)
	start := time.Now()
	auth := w.pullAuth(ctx, pod, image)
	var pulled time.Duration
	v, err, _ := w.pulls.Do(sharedPullKey(image, auth), func() (any, error) {
		s := time.Now()
		r, err := w.pullWithAuth(ctx, image, auth)
		pulled = time.Since(s)
		return r, err
	})
	ref, _ = v.(string)
	if err != nil {
		w.pullBack.Next(key, w.pullBack.Clock.Now())
		w.pullErrs.Store(key, err.Error())
		w.event(pod, c, v1.EventTypeWarning, "Failed", "Failed to pull image %q: %v", image, err)
		return "", status.Waiting{Reason: "ErrImagePull", Message: err.Error()}, err
	}
	w.pullBack.Reset(key)
	total := time.Since(start)
	if pulled == 0 {
		pulled = total
	}
	w.event(pod, c, v1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %v (%v including waiting). Image size: %d bytes.",
		image, pulled, total, w.imageSize(ctx, image))
	return ref, status.Waiting{}, nil
}

// verifyNonRoot applies runAsNonRoot against the image's user (only asked of the runtime
// when runAsNonRoot is set and runAsUser is not).
func (w *Workers) verifyNonRoot(ctx context.Context, pod *v1.Pod, c *v1.Container, imageRef string) error {
	if err := cri.VerifyRunAsNonRoot(pod, c, new(int64(1)), ""); err != nil {
		return err // runAsUser 0 breaks the policy whatever the image says
	}
	zero := int64(0)
	if cri.VerifyRunAsNonRoot(pod, c, &zero, "") == nil {
		return nil // no policy, or a non-root runAsUser
	}
	resp, err := w.cfg.Runtime.ImageService().ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: imageRef}})
	if err != nil {
		return err
	}
	img := resp.GetImage()
	var uid *int64
	if u := img.GetUid(); u != nil {
		uid = &u.Value
	} else if img.GetUsername() == "" {
		uid = &zero // an image without a user runs as root
	}
	return cri.VerifyRunAsNonRoot(pod, c, uid, img.GetUsername())
}

func (w *Workers) imageSize(ctx context.Context, image string) uint64 {
	resp, err := w.cfg.Runtime.ImageService().ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: image}})
	if err != nil {
		return 0
	}
	return resp.GetImage().GetSize()
}

// pullWithAuth tries each credential in turn (as upstream), then anonymously.
func (w *Workers) pullWithAuth(ctx context.Context, image string, auths []*runtimeapi.AuthConfig) (string, error) {
	var lastErr error
	for _, a := range append(auths, nil) {
		ref, err := w.cfg.Runtime.PullImage(ctx, image, a, nil)
		if err == nil {
			return ref, nil
		}
		lastErr = err
	}
	return "", lastErr
}

// startContainer pulls, creates and starts one container. On failure it returns the
// waiting reason and message upstream reports for that step.
func (w *Workers) startContainer(ctx context.Context, pod *v1.Pod, sandboxID string, s start, st *cri.PodState) (status.Waiting, error) {
	c := s.Container
	imageRef, wt, err := w.ensureImage(ctx, pod, c)
	if err != nil {
		w.event(pod, c, v1.EventTypeWarning, "Failed", "Error: %s", wt.Reason)
		return wt, err
	}
	if err := w.verifyNonRoot(ctx, pod, c, imageRef); err != nil {
		w.event(pod, c, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return status.Waiting{Reason: "CreateContainerConfigError", Message: err.Error()}, err
	}
	sbStatus, err := w.cfg.Runtime.SandboxStatus(ctx, sandboxID)
	if err != nil {
		return status.Waiting{Reason: "CreateContainerError", Message: err.Error()}, err
	}
	var podIPs []string
	if n := sbStatus.GetNetwork(); n != nil && n.Ip != "" {
		podIPs = append(podIPs, n.Ip)
		for _, ip := range n.AdditionalIps {
			podIPs = append(podIPs, ip.Ip)
		}
	}
	env, err := w.resolveEnvFor(ctx, pod, c, podIPs, w.cfg.HostIPs)
	if err != nil {
		w.event(pod, c, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return status.Waiting{Reason: "CreateContainerConfigError", Message: err.Error()}, err
	}
	mounts, termPath, err := w.containerMounts(pod, c, s.RestartCount, podIPs)
	if err == nil {
		var vm []*runtimeapi.Mount
		vm, err = w.volumeMounts(ctx, pod, c, env)
		mounts = append(mounts, vm...)
	}
	if err != nil {
		w.event(pod, c, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return status.Waiting{Reason: "CreateContainerConfigError", Message: err.Error()}, err
	}
	cfg, err := cri.ContainerConfig(pod, c, cri.ContainerOptions{
		NodeName: w.cfg.NodeName, RestartCount: s.RestartCount, Init: s.Init, ImageRef: imageRef, Env: env, Mounts: mounts,
		SeccompDir: filepath.Join(w.cfg.RootDir, "seccomp")})
	if err != nil {
		w.event(pod, c, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return status.Waiting{Reason: "CreateContainerConfigError", Message: err.Error()}, err
	}
	cfg.Annotations[cri.AnnotationTermMsgHostPath] = termPath
	sbCfg, _ := cri.SandboxConfig(pod, 0, w.sandboxOptions())
	if err := os.MkdirAll(filepath.Join(sbCfg.LogDirectory, c.Name), 0o755); err != nil {
		return status.Waiting{Reason: "CreateContainerError", Message: err.Error()}, err
	}
	if s.RestartCount > 0 {
		if last, _ := st.Latest(c.Name); last != nil && last.State == cri.StateExited {
			w.crashBack.Next(backOffKey(pod, c), last.FinishedAt)
		}
	}
	id, err := w.cfg.Runtime.CreateContainer(ctx, sandboxID, cfg, sbCfg)
	if err != nil {
		w.event(pod, c, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return status.Waiting{Reason: "CreateContainerError", Message: err.Error()}, err
	}
	w.event(pod, c, v1.EventTypeNormal, "Created", "Container created")
	if err := w.cfg.Runtime.StartContainer(ctx, id); err != nil {
		w.event(pod, c, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return status.Waiting{Reason: "RunContainerError", Message: err.Error()}, err
	}
	w.event(pod, c, v1.EventTypeNormal, "Started", "Container started")
	podIP := ""
	if len(podIPs) > 0 {
		podIP = podIPs[0]
	}
	if msg, err := w.postStart(ctx, pod, c, id, podIP); err != nil {
		return status.Waiting{Reason: "PostStartHookError", Message: msg}, err
	}
	klog.FromContext(ctx).V(2).Info("Started container", "pod", klog.KObj(pod), "container", c.Name, "restartCount", s.RestartCount)
	// Keep the newest two instances (current and previous, for logs --previous).
	w.removeOldInstances(ctx, st, c.Name)
	return status.Waiting{}, nil
}

func (w *Workers) removeOldInstances(ctx context.Context, st *cri.PodState, name string) {
	seen := 0
	for _, ct := range st.Containers {
		if ct.Name != name {
			continue
		}
		seen++
		if seen >= 2 && ct.State == cri.StateExited {
			_ = w.cfg.Runtime.RemoveContainer(ctx, ct.ID)
		}
	}
}

// containerMounts: the termination-message file (a fresh one per instance) and the
// kubelet-managed /etc/hosts (hostsFile). Volumes: volumeMounts.
func (w *Workers) containerMounts(pod *v1.Pod, c *v1.Container, restartCount int, podIPs []string) ([]*runtimeapi.Mount, string, error) {
	var mounts []*runtimeapi.Mount
	dir := filepath.Join(w.podDir(pod), "containers", c.Name)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, "", err
	}
	termPath := ""
	if c.TerminationMessagePath != "" {
		termPath = filepath.Join(dir, strconv.Itoa(restartCount)+"-termination-log")
		if err := os.WriteFile(termPath, nil, 0o666); err != nil {
			return nil, "", err
		}
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: c.TerminationMessagePath, HostPath: termPath})
	}
	// As upstream: no hosts file before a pod-network pod has an address.
	if (len(podIPs) > 0 || pod.Spec.HostNetwork) && !hasMountAt(c, "/etc/hosts") {
		content, err := w.hostsFile(pod, podIPs)
		if err != nil {
			return nil, "", err
		}
		hosts := filepath.Join(w.podDir(pod), "etc-hosts")
		if err := os.WriteFile(hosts, content, 0o644); err != nil {
			return nil, "", err
		}
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: "/etc/hosts", HostPath: hosts})
	}
	return mounts, termPath, nil
}
