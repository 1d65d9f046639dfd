// Package images pulls the containers' images as the upstream kubelet does: the
// imagePullPolicy as written in the spec, the pod's imagePullSecrets as registry
// credentials, a pull back-off per container, concurrent identical pulls shared, and
// upstream's waiting reasons (InvalidImageName, ImageInspectError, ErrImageNeverPull,
// ErrImagePull, RegistryUnavailable, SignatureValidationFailed, ImagePullBackOff) and
// Pulling/Pulled/Failed/BackOff events.
package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"golang.org/x/sync/singleflight"
	"google.golang.org/protobuf/proto"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/flowcontrol"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	crierrors "k8s.io/cri-api/pkg/errors"

	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
)

// Upstream kubelet's image pull back-off: 10s doubling to 300s.
const (
	backOffInitial = 10 * time.Second
	backOffMax     = 300 * time.Second
)

// Runtime is what pulling needs of the container runtime (*cri.Client has it).
type Runtime interface {
	ImageRef(ctx context.Context, image string) (string, error)
	ImageStatus(ctx context.Context, image string) (*runtimeapi.Image, error)
	PullImage(ctx context.Context, image string, auth *runtimeapi.AuthConfig, sbCfg *runtimeapi.PodSandboxConfig) (string, error)
}

// EventFunc records an event on a pod's container.
type EventFunc func(pod *v1.Pod, c *v1.Container, eventtype, reason, messageFmt string, args ...any)

// Config is what a Puller needs; Runtime and Event are required.
type Config struct {
	Runtime Runtime
	// Client reads the pods' imagePullSecrets (nil: every pull is anonymous).
	Client kubernetes.Interface
	Event  EventFunc
}

// Puller makes sure the containers' images are present. It is safe for concurrent use.
type Puller struct {
	cfg     Config
	backOff *flowcontrol.Backoff
	pulls   singleflight.Group // keyed by sharedPullKey: concurrent identical pulls share one
	lastErr sync.Map           // back-off key -> last pull error message
}

// New returns a Puller.
func New(cfg Config) *Puller {
	return &Puller{cfg: cfg, backOff: flowcontrol.NewBackOff(backOffInitial, backOffMax)}
}

// GC forgets back-offs unused for a while (call it now and then).
func (p *Puller) GC() { p.backOff.GC() }

// RetryIn is how long until a pull of image for pod in back-off may be tried again (0: none).
func (p *Puller) RetryIn(pod *v1.Pod, image string) time.Duration {
	return p.backOff.Get(backOffKey(pod, image))
}

// backOffKey: one back-off per pod and image as written, shared by the containers and
// image volumes naming it (upstream's podUID_image).
func backOffKey(pod *v1.Pod, image string) string { return string(pod.UID) + "_" + image }

// EnsureImage applies the container's imagePullPolicy exactly as written in the spec and
// returns the image ref to create the container from; on failure, the waiting reason and
// message upstream reports.
func (p *Puller) EnsureImage(ctx context.Context, pod *v1.Pod, c *v1.Container) (string, status.Waiting, error) {
	return p.ensure(ctx, pod, c, c.Image, c.ImagePullPolicy)
}

// ensure makes requested present under policy. Events go to container c, or to the pod
// when c is nil (an image volume's pull, as upstream's getImageVolumes records them).
func (p *Puller) ensure(ctx context.Context, pod *v1.Pod, c *v1.Container, requested string, policy v1.PullPolicy) (string, status.Waiting, error) {
	image, err := withDefaultTag(requested)
	if err != nil {
		msg := fmt.Sprintf("Failed to apply default image tag %q: %v", requested, err)
		p.cfg.Event(pod, c, v1.EventTypeWarning, "InspectFailed", "%s", msg)
		return "", status.Waiting{Reason: "InvalidImageName", Message: msg}, fmt.Errorf("%s", msg)
	}
	if policy == v1.PullNever || policy == v1.PullIfNotPresent {
		// Only these policies look for the image first (upstream's imagePullPrecheck).
		ref, err := p.cfg.Runtime.ImageRef(ctx, image)
		if err != nil {
			// Upstream's ErrImageInspect, whose text is the reason; its message quotes the
			// failed lookup's ref, which is empty, not the image (image_manager.go
			// imagePullPrecheck). No back-off: the next sync retries.
			msg := fmt.Sprintf(`Failed to inspect image "": %v`, err)
			p.cfg.Event(pod, c, v1.EventTypeWarning, "InspectFailed", "%s", msg)
			return "", status.Waiting{Reason: "ImageInspectError", Message: msg}, err
		}
		if ref != "" {
			p.cfg.Event(pod, c, v1.EventTypeNormal, "Pulled", "Container image %q already present on machine and can be accessed by the pod", requested)
			return ref, status.Waiting{}, nil
		}
		if policy == v1.PullNever {
			msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", requested)
			p.cfg.Event(pod, c, v1.EventTypeWarning, "ErrImageNeverPull", "%s", msg)
			return "", status.Waiting{Reason: "ErrImageNeverPull", Message: msg}, fmt.Errorf("%s", msg)
		}
	}
	key := backOffKey(pod, requested)
	if p.backOff.IsInBackOffSinceUpdate(key, p.backOff.Clock.Now()) {
		msg := fmt.Sprintf("Back-off pulling image %q", image)
		p.cfg.Event(pod, c, v1.EventTypeNormal, "BackOff", "%s", msg)
		if prev, ok := p.lastErr.Load(key); ok {
			msg = fmt.Sprintf("%s: %s", msg, prev)
		}
		return "", status.Waiting{Reason: "ImagePullBackOff", Message: msg}, fmt.Errorf("%s", msg)
	}
	return p.pull(ctx, pod, c, image, key)
}

// pull pulls image for the container or image volume (sharing an identical pull in
// flight) and feeds the back-off with the outcome.
func (p *Puller) pull(ctx context.Context, pod *v1.Pod, c *v1.Container, image, key string) (string, status.Waiting, error) {
	p.lastErr.Delete(key)
	p.cfg.Event(pod, c, v1.EventTypeNormal, "Pulling", "Pulling image %q", image)
	start := time.Now()
	auth := p.pullAuth(ctx, pod, image)
	var pulled time.Duration
	v, err, _ := p.pulls.Do(sharedPullKey(image, auth), func() (any, error) {
		s := time.Now()
		r, err := p.pullWithAuth(ctx, image, auth)
		pulled = time.Since(s)
		return r, err
	})
	ref, _ := v.(string)
	if err != nil {
		p.backOff.Next(key, p.backOff.Clock.Now())
		p.cfg.Event(pod, c, v1.EventTypeWarning, "Failed", "Failed to pull image %q: %v", image, err)
		wt := pullFailure(image, err)
		// Kept for the back-off's message, led by the reason as upstream stores it.
		p.lastErr.Store(key, wt.Reason+": "+wt.Message)
		return "", wt, err
	}
	p.backOff.Reset(key)
	total := time.Since(start)
	if pulled == 0 {
		pulled = total // another container's pull was shared
	}
	p.cfg.Event(pod, c, v1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %v (%v including waiting). Image size: %d bytes.",
		image, pulled, total, p.imageSize(ctx, image))
	return ref, status.Waiting{}, nil
}

// pullFailure is the waiting reason and message of a failed pull, as upstream's
// evalCRIPullErr reads the runtime's error: a message led by "RegistryUnavailable" or
// "SignatureValidationFailed" (cri-api's errors; tested on the text as the CRI client
// gives it, so a gRPC code other than Unknown hides them) names its own reason.
func pullFailure(image string, err error) status.Waiting {
	msg := err.Error()
	for _, e := range []struct {
		reason error
		why    string
	}{
		{crierrors.ErrRegistryUnavailable, "the registry is unavailable"},
		{crierrors.ErrSignatureValidationFailed, "the signature validation failed"},
	} {
		if rest, ok := strings.CutPrefix(msg, e.reason.Error()); ok {
			return status.Waiting{Reason: e.reason.Error(), Message: fmt.Sprintf("image pull failed for %s because %s%s", image, e.why, rest)}
		}
	}
	return status.Waiting{Reason: "ErrImagePull", Message: msg}
}

// pullWithAuth tries each credential in turn (as upstream), then anonymously.
func (p *Puller) pullWithAuth(ctx context.Context, image string, auths []*runtimeapi.AuthConfig) (string, error) {
	var lastErr error
	for _, a := range append(auths, nil) {
		ref, err := p.cfg.Runtime.PullImage(ctx, image, a, nil)
		if err == nil {
			return ref, nil
		}
		lastErr = err
	}
	return "", lastErr
}

func (p *Puller) imageSize(ctx context.Context, image string) uint64 {
	img, err := p.cfg.Runtime.ImageStatus(ctx, image)
	if err != nil {
		return 0
	}
	return img.GetSize()
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

// withDefaultTag adds ":latest" to a reference with neither tag nor digest, as upstream.
// Short names ("busybox", "busybox:1.35") are valid: the runtime completes them.
func withDefaultTag(image string) (string, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", fmt.Errorf("couldn't parse image name %q: %v", image, err)
	}
	if _, digested := named.(reference.Digested); digested {
		return image, nil
	}
	tag := "latest"
	if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	}
	// Appended, not re-rendered: a short name stays short (no docker.io/library/).
	if !strings.HasSuffix(image, ":"+tag) {
		image += ":" + tag
	}
	return image, nil
}
