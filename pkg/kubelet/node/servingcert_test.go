package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/certificate"

	"github.com/minikubelet/minikubelet/pkg/kubelet/node/csrtesting"
)

// waitCSRs waits until client has n CSRs and returns them.
func waitCSRs(ctx context.Context, t *testing.T, client kubernetes.Interface, n int) []certificatesv1.CertificateSigningRequest {
	t.Helper()
	for {
		list, err := client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) >= n {
			return list.Items
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d CSRs, want %d", len(list.Items), n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// issueServing approves r, has ca issue the serving certificate it asks for, writing it
// again until mgr has it (the fake's watch cannot resume, so a waiter that listed just
// before the update would miss a single write).
func issueServing(ctx context.Context, t *testing.T, ca *csrtesting.CA, client kubernetes.Interface, r certificatesv1.CertificateSigningRequest, mgr certificate.Manager) []byte {
	t.Helper()
	r.Status.Certificate, _ = ca.SignServing(t, r.Spec.Request)
	r.Status.Conditions = append(r.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: v1.ConditionTrue, Reason: "TestApproved"})
	for mgr.Current() == nil {
		if _, err := client.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, &r, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ctx.Done():
			t.Fatal("the manager never took the issued certificate")
		case <-time.After(50 * time.Millisecond):
		}
	}
	return r.Status.Certificate
}

// The serving CSR is what upstream's kubelet asks for (signer, subject, SANs, usages);
// nothing is served before it is issued, and the issued certificate is current at once
// and kept in <cert-dir>/kubelet-server-current.pem.
func TestServingCertificateRequestsAndStores(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, ca, dir := csrtesting.NewClientset(t), csrtesting.NewCA(t), t.TempDir()
	mgr, err := ServingCertificate(ctx, ServingCertConfig{Client: client, NodeName: "node-a", Hostname: "host-a",
		IPs: []string{"10.1.2.3", "127.0.0.1"}, CertDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	r := waitCSRs(ctx, t, client, 1)[0]
	if mgr.Current() != nil {
		t.Error("a serving certificate before the CSR was issued")
	}
	if r.Spec.SignerName != certificatesv1.KubeletServingSignerName {
		t.Errorf("signerName %q, want %q", r.Spec.SignerName, certificatesv1.KubeletServingSignerName)
	}
	// An ECDSA key: no key encipherment (upstream's DefaultKubeletServingGetUsages).
	if want := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}; !slices.Equal(r.Spec.Usages, want) {
		t.Errorf("usages %v, want %v", r.Spec.Usages, want)
	}
	block, _ := pem.Decode(r.Spec.Request)
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := req.CheckSignature(); err != nil {
		t.Error(err)
	}
	if req.Subject.CommonName != "system:node:node-a" || !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) {
		t.Errorf("subject %s", req.Subject)
	}
	if !slices.Equal(req.DNSNames, []string{"host-a", "node-a"}) {
		t.Errorf("DNS names %v, want [host-a node-a]", req.DNSNames)
	}
	var ips []string
	for _, ip := range req.IPAddresses {
		ips = append(ips, ip.String())
	}
	if !slices.Equal(ips, []string{"10.1.2.3", "127.0.0.1"}) {
		t.Errorf("IP addresses %v", ips)
	}
	if k, ok := req.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", req.PublicKey)
	}

	certPEM := issueServing(ctx, t, ca, client, r, mgr)
	block, _ = pem.Decode(certPEM)
	if cur := mgr.Current(); cur == nil || !slices.Equal(cur.Certificate[0], block.Bytes) {
		t.Error("the current certificate is not the issued one")
	}
	stored, err := os.ReadFile(filepath.Join(dir, "kubelet-server-current.pem"))
	if err != nil || !slices.Contains(splitPEM(stored), string(certPEM)) {
		t.Errorf("kubelet-server-current.pem: %v, issued certificate in it: %v", err, err == nil && slices.Contains(splitPEM(stored), string(certPEM)))
	}
}

func splitPEM(data []byte) []string {
	var out []string
	for {
		var b *pem.Block
		if b, data = pem.Decode(data); b == nil {
			return out
		}
		out = append(out, string(pem.EncodeToMemory(b)))
	}
}

// With tlsCertFile, as upstream, the file is the store's starting pair: served at once, and
// kept while it is for the node's names (renewed only near its end); one for another
// subject is replaced through a CSR at once.
func TestServingCertificateStartsFromTLSCertFile(t *testing.T) {
	ca := csrtesting.NewCA(t)
	writePair := func(t *testing.T, subject pkix.Name, hosts ...string) (string, string, []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		certPEM, _ := ca.Issue(t, &key.PublicKey, subject, time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour), hosts...)
		der, _ := x509.MarshalECPrivateKey(key)
		dir := t.TempDir()
		crt, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
		if err := os.WriteFile(crt, certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return crt, keyFile, certPEM
	}
	for _, tc := range []struct {
		name    string
		subject pkix.Name
		wantCSR bool
	}{
		{"node's own certificate", nodeSubject("node-a"), false},
		{"another subject", pkix.Name{CommonName: "kubelet-admin-made"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			crt, key, certPEM := writePair(t, tc.subject, "node-a", "127.0.0.1")
			client := csrtesting.NewClientset(t)
			mgr, err := ServingCertificate(ctx, ServingCertConfig{Client: client, NodeName: "node-a", Hostname: "node-a",
				IPs: []string{"127.0.0.1"}, CertDir: t.TempDir(), CertFile: crt, KeyFile: key})
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode(certPEM)
			if cur := mgr.Current(); cur == nil || !slices.Equal(cur.Certificate[0], block.Bytes) {
				t.Fatal("tlsCertFile is not the current certificate at start")
			}
			if tc.wantCSR {
				waitCSRs(ctx, t, client, 1)
				return
			}
			time.Sleep(500 * time.Millisecond)
			if list, _ := client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{}); len(list.Items) != 0 {
				t.Errorf("%d CSRs for a valid tlsCertFile far from its end", len(list.Items))
			}
		})
	}
}

func TestServingTemplateNeedsAnIP(t *testing.T) {
	if _, err := servingTemplate("n", "n", nil); err == nil {
		t.Error("a template without IP addresses")
	}
	if _, err := servingTemplate("n", "n", []string{"not-an-ip"}); err == nil {
		t.Error("a template with a bad IP address")
	}
	tmpl, err := servingTemplate("n", "n", []string{"127.0.0.1", "127.0.0.1"})
	if err != nil || !slices.Equal(tmpl.DNSNames, []string{"n"}) || len(tmpl.IPAddresses) != 1 {
		t.Errorf("template %+v, %v: want DNS [n] and one IP", tmpl, err)
	}
}
