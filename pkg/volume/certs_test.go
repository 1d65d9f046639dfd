package volume

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

type fakeBundles struct{}

func (fakeBundles) ByName(_ context.Context, name string, allowMissing bool) ([]byte, error) {
	if name == "ca" {
		return []byte("PEM of ca\n"), nil
	}
	if allowMissing {
		return []byte{}, nil
	}
	return nil, errors.New("while getting ClusterTrustBundle: not found")
}

func (fakeBundles) BySigner(_ context.Context, signer string, sel *metav1.LabelSelector, _ bool) ([]byte, error) {
	return []byte("PEM of " + signer + " " + metav1.FormatLabelSelector(sel) + "\n"), nil
}

type fakeCerts struct {
	issued    bool
	asked     []string // volume/index of each call
	forgotten []types.UID
}

func (f *fakeCerts) Credentials(_ context.Context, pod *v1.Pod, vol string, i int, src *v1.PodCertificateProjection) ([]byte, []byte, error) {
	f.asked = append(f.asked, vol+"/"+string(rune('0'+i)))
	if !f.issued {
		return nil, nil, errors.New("PodCertificateRequest ns/req-1 has not been issued yet")
	}
	return []byte("KEY " + src.SignerName + "\n"), []byte("CHAIN\n"), nil
}

func (f *fakeCerts) Forget(uid types.UID) { f.forgotten = append(f.forgotten, uid) }

func certVolume() v1.Volume {
	return v1.Volume{Name: "certs", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{
		{ClusterTrustBundle: &v1.ClusterTrustBundleProjection{Name: ptr.To("ca"), Path: "ca.pem"}},
		{ClusterTrustBundle: &v1.ClusterTrustBundleProjection{SignerName: ptr.To("example.com/s"), LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}, Path: "signer.pem"}},
		{ClusterTrustBundle: &v1.ClusterTrustBundleProjection{Name: ptr.To("absent"), Optional: ptr.To(true), Path: "opt.pem"}},
		{PodCertificate: &v1.PodCertificateProjection{SignerName: "example.com/s", KeyType: "ED25519",
			CredentialBundlePath: "bundle.pem", KeyPath: "key.pem", CertificateChainPath: "chain.pem"}},
	}}}}
}

func TestCertificateProjections(t *testing.T) {
	m, _, _ := newTestManager(t)
	certs := &fakeCerts{}
	m.cfg.TrustBundles, m.cfg.PodCertificates = fakeBundles{}, certs
	pod := testPod(certVolume())
	ctx := context.Background()

	// Until the signer issues the certificate the volume is not set up; the error says why.
	if _, err := m.SetUp(ctx, pod, nil); err == nil || !strings.Contains(err.Error(), "has not been issued yet") {
		t.Fatalf("set-up before issuance: %v", err)
	}
	certs.issued = true
	mounts, err := m.SetUp(ctx, pod, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.TearDown(ctx, pod.UID) })
	dir := mounts["certs"].HostPath
	for f, want := range map[string]string{
		"ca.pem": "PEM of ca\n", "signer.pem": "PEM of example.com/s a=b\n", "opt.pem": "",
		"bundle.pem": "KEY example.com/s\nCHAIN\n", "key.pem": "KEY example.com/s\n", "chain.pem": "CHAIN\n",
	} {
		if got := read(t, filepath.Join(dir, f)); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	if got := certs.asked[len(certs.asked)-1]; got != "certs/3" {
		t.Errorf("credentials asked for %q, want the volume and the source's index (certs/3)", got)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "key.pem")); fi.Mode().Perm() != 0o644 {
		t.Errorf("key mode %v, want the volume's default 0644 without an fsGroup", fi.Mode().Perm())
	}
	if err := m.TearDown(ctx, pod.UID); err != nil {
		t.Fatal(err)
	}
	if len(certs.forgotten) != 1 || certs.forgotten[0] != pod.UID {
		t.Errorf("tear-down must drop the pod's credentials: %v", certs.forgotten)
	}

	// With an fsGroup the credential files are the owner's only, as upstream.
	grouped := testPod(certVolume())
	grouped.UID = "uid-2"
	grouped.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: ptr.To(int64(1234))}
	mounts, err = m.SetUp(ctx, grouped, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.TearDown(ctx, grouped.UID) })
	for f, want := range map[string]os.FileMode{"key.pem": 0o600, "bundle.pem": 0o600, "ca.pem": 0o644} {
		if fi, _ := os.Stat(filepath.Join(mounts["certs"].HostPath, f)); fi.Mode().Perm() != want {
			t.Errorf("%s mode %v with an fsGroup, want %v", f, fi.Mode().Perm(), want)
		}
	}
}

func TestCertificateProjectionErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		src   v1.VolumeProjection
		certs bool
		want  string
	}{
		{"missing bundle", v1.VolumeProjection{ClusterTrustBundle: &v1.ClusterTrustBundleProjection{Name: ptr.To("absent"), Path: "x"}}, true,
			"while getting ClusterTrustBundle"},
		{"neither name nor signer", v1.VolumeProjection{ClusterTrustBundle: &v1.ClusterTrustBundleProjection{Path: "x"}}, true,
			"ClusterTrustBundle projection requires either name or signerName to be set"},
		{"bad path", v1.VolumeProjection{PodCertificate: &v1.PodCertificateProjection{SignerName: "s", KeyType: "ED25519", KeyPath: "../k"}}, true,
			`invalid file path "../k"`},
		{"no trust bundle manager", v1.VolumeProjection{ClusterTrustBundle: &v1.ClusterTrustBundleProjection{Name: ptr.To("ca"), Path: "x"}}, false,
			"ClusterTrustBundle projection is not supported in static kubelet mode"},
		{"no pod certificate manager", v1.VolumeProjection{PodCertificate: &v1.PodCertificateProjection{SignerName: "s", KeyType: "ED25519", KeyPath: "k"}}, false,
			"PodCertificate projection is not supported in static kubelet mode"},
	} {
		m, _, _ := newTestManager(t)
		if tc.certs {
			m.cfg.TrustBundles, m.cfg.PodCertificates = fakeBundles{}, &fakeCerts{issued: true}
		}
		vol := v1.Volume{Name: "v", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{Sources: []v1.VolumeProjection{tc.src}}}}
		_, err := m.SetUp(context.Background(), testPod(vol), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
