package images

import (
	"context"

	"github.com/distribution/reference"
	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
)

// EnsureVolumeImage makes an image volume's image present under the volume's pullPolicy,
// as upstream's getImageVolumes: the same checks, back-off and waiting reasons as a
// container's image, but its events are the pod's (no container field path).
func (p *Puller) EnsureVolumeImage(ctx context.Context, pod *v1.Pod, src *v1.ImageVolumeSource) (string, status.Waiting, error) {
	return p.ensure(ctx, pod, nil, src.Reference, VolumePullPolicy(src))
}

// VolumePullPolicy is the volume's pullPolicy, or the API server's default for one left
// empty (e.g. an undefaulted static pod): Always for ":latest" or a reference with
// neither tag nor digest, else IfNotPresent (upstream's SetDefaults_Volume).
func VolumePullPolicy(src *v1.ImageVolumeSource) v1.PullPolicy {
	if src.PullPolicy != "" {
		return src.PullPolicy
	}
	named, err := reference.ParseNormalizedNamed(src.Reference)
	if err != nil {
		return v1.PullIfNotPresent // upstream's parser gives no tag for a bad reference
	}
	tagged, hasTag := named.(reference.Tagged)
	_, hasDigest := named.(reference.Digested)
	if (hasTag && tagged.Tag() == "latest") || (!hasTag && !hasDigest) {
		return v1.PullAlways
	}
	return v1.PullIfNotPresent
}
