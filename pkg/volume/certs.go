package volume

import (
	"context"
	"errors"
	"os"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TrustBundles answers clusterTrustBundle projections (pkg/kubelet/clustertrustbundle).
type TrustBundles interface {
	ByName(ctx context.Context, name string, allowMissing bool) ([]byte, error)
	BySigner(ctx context.Context, signerName string, selector *metav1.LabelSelector, allowMissing bool) ([]byte, error)
}

// PodCertificates answers podCertificate projections (pkg/kubelet/podcertificate): the
// PEM key and certificate chain of one source, an error until the signer issued them.
type PodCertificates interface {
	Credentials(ctx context.Context, pod *v1.Pod, volumeName string, sourceIndex int, src *v1.PodCertificateProjection) (key, chain []byte, err error)
	Forget(podUID types.UID)
}

// trustBundleFiles is a clusterTrustBundle projection's file: the anchors of the named
// bundle, or of a signer's bundles that match the selector.
func (m *Manager) trustBundleFiles(ctx context.Context, s *v1.ClusterTrustBundleProjection, mode os.FileMode) (map[string]File, error) {
	if err := validFilePath(s.Path); err != nil {
		return nil, err
	}
	if m.cfg.TrustBundles == nil {
		return nil, errors.New("ClusterTrustBundle projection is not supported in static kubelet mode")
	}
	optional := s.Optional != nil && *s.Optional
	var data []byte
	var err error
	switch {
	case s.Name != nil:
		data, err = m.cfg.TrustBundles.ByName(ctx, *s.Name, optional)
	case s.SignerName != nil:
		data, err = m.cfg.TrustBundles.BySigner(ctx, *s.SignerName, s.LabelSelector, optional)
	default:
		err = errors.New("ClusterTrustBundle projection requires either name or signerName to be set")
	}
	if err != nil {
		return nil, err
	}
	return map[string]File{s.Path: {Data: data, Mode: mode}}, nil
}

// podCertificateFiles are a podCertificate projection's files: the key and the chain
// together (the key first), and each alone, at the paths the source names. As upstream,
// they are readable by the owner only when the pod has an fsGroup.
func (m *Manager) podCertificateFiles(ctx context.Context, pod *v1.Pod, volName string, index int, s *v1.PodCertificateProjection, mode os.FileMode) (map[string]File, error) {
	for _, p := range []string{s.CredentialBundlePath, s.KeyPath, s.CertificateChainPath} {
		if p == "" {
			continue
		}
		if err := validFilePath(p); err != nil {
			return nil, err
		}
	}
	if m.cfg.PodCertificates == nil {
		return nil, errors.New("PodCertificate projection is not supported in static kubelet mode")
	}
	key, chain, err := m.cfg.PodCertificates.Credentials(ctx, pod, volName, index, s)
	if err != nil {
		return nil, err
	}
	if sc := pod.Spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		mode = 0o600
	}
	files := map[string]File{}
	if s.CredentialBundlePath != "" {
		files[s.CredentialBundlePath] = File{Data: append(append([]byte{}, key...), chain...), Mode: mode}
	}
	if s.KeyPath != "" {
		files[s.KeyPath] = File{Data: key, Mode: mode}
	}
	if s.CertificateChainPath != "" {
		files[s.CertificateChainPath] = File{Data: chain, Mode: mode}
	}
	return files, nil
}
