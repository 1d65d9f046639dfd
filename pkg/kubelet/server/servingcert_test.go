package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"

	"github.com/minikubelet/minikubelet/pkg/kubelet/node"
	"github.com/minikubelet/minikubelet/pkg/kubelet/node/csrtesting"
)

// newBootstrapServer runs, until the test ends, a server for node "n1" on an ephemeral
// port whose serving certificate comes from src; anonymous requests are allowed.
func newBootstrapServer(t *testing.T, cs *fake.Clientset, src CertificateSource) *Server {
	t.Helper()
	k := testKubeletConfig(t)
	k.Authentication.Anonymous.Enabled = ptr(true)
	k.Authorization.Mode = kubeletv1beta1.KubeletAuthorizationModeAlwaysAllow
	s, err := New(Config{Kubelet: k, NodeName: "n1", Hostname: "n1", NodeIPs: []string{"127.0.0.1"},
		Client: cs, Runtime: &fakeRuntime{}, Pods: func() []*v1.Pod { return nil }, ServingCertificate: src})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

// serverCert is what a TLS client that trusts roots (none: trusts anything) is served
// when it dials s for 127.0.0.1.
func serverCert(s *Server, roots *x509.CertPool) (*x509.Certificate, error) {
	tc := &tls.Config{ServerName: "127.0.0.1", RootCAs: roots, InsecureSkipVerify: roots == nil}
	conn, err := tls.Dial("tcp", s.Addr().String(), tc)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func ttlMetric(t *testing.T, s *Server) string {
	t.Helper()
	body := do(t, s.Handler(), "GET", "/metrics", "").Body.String()
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, "kubelet_certificate_manager_server_ttl_seconds "); ok {
			return v
		}
	}
	t.Fatal("/metrics has no kubelet_certificate_manager_server_ttl_seconds")
	return ""
}

// serverTLSBootstrap end to end with a fake API: before the kubelet-serving CSR is issued
// every handshake fails with upstream's message; once it is approved and issued, a client
// that verifies the server against the CA gets that certificate (no restart) and is served.
func TestServingCertificateFromCSR(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs := csrtesting.NewClientset(t)
	mgr, err := node.ServingCertificate(ctx, node.ServingCertConfig{Client: cs, NodeName: "n1", Hostname: "n1",
		IPs: []string{"127.0.0.1"}, CertDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s := newBootstrapServer(t, cs, mgr)

	if _, err := s.tls.GetCertificate(&tls.ClientHelloInfo{}); err == nil || err.Error() != "no serving certificate available for the kubelet" {
		t.Errorf("GetCertificate before the CSR is issued: %v, want upstream's error", err)
	}
	if c, err := serverCert(s, nil); err == nil {
		t.Fatalf("handshake before the CSR is issued got %s", c.Subject)
	}
	if v := ttlMetric(t, s); v != "+Inf" {
		t.Errorf("ttl without a certificate %s, want +Inf", v)
	}

	var r *certificatesv1.CertificateSigningRequest
	for r == nil {
		list, err := cs.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
		if err != nil || ctx.Err() != nil {
			t.Fatalf("no CSR: %v %v", err, ctx.Err())
		}
		if len(list.Items) > 0 {
			r = &list.Items[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r.Spec.SignerName != certificatesv1.KubeletServingSignerName {
		t.Errorf("signer %s", r.Spec.SignerName)
	}
	ca := csrtesting.NewCA(t)
	var serial *big.Int
	r.Status.Certificate, serial = ca.SignServing(t, r.Spec.Request)
	r.Status.Conditions = []certificatesv1.CertificateSigningRequestCondition{{
		Type: certificatesv1.CertificateApproved, Status: v1.ConditionTrue, Reason: "TestApproved"}}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	// Written again until served: the fake's watch cannot resume, so a waiter that listed
	// just before a single write would miss it.
	var got *x509.Certificate
	for got == nil {
		if _, err := cs.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, r, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatal("the issued certificate was never served")
		}
		time.Sleep(50 * time.Millisecond)
		got, _ = serverCert(s, roots)
	}
	if got.SerialNumber.Cmp(serial) != 0 || got.Subject.CommonName != "system:node:n1" {
		t.Errorf("served %s serial %v, want the issued one (%v)", got.Subject, got.SerialNumber, serial)
	}

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}}
	resp, err := hc.Get(fmt.Sprintf("https://%s/healthz", s.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Errorf("/healthz over the verified connection: %d %q", resp.StatusCode, body)
	}
	if v := ttlMetric(t, s); !strings.HasPrefix(v, "35") {
		t.Errorf("ttl of a certificate valid for an hour: %s seconds", v)
	}
}

// swapSource is a serving certificate source tests replace.
type swapSource struct {
	p atomic.Pointer[tls.Certificate]
}

func (s *swapSource) Current() *tls.Certificate { return s.p.Load() }

// A certificate that appears or changes is served on the next handshake.
func TestServingCertificateChangesWithoutRestart(t *testing.T) {
	ca := csrtesting.NewCA(t)
	leaf := func(cn string) *tls.Certificate {
		key, _ := ecdsa.GenerateKey(ca.Key.Curve, rand.Reader)
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
		if err != nil {
			t.Fatal(err)
		}
		certPEM, _ := ca.SignServing(t, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))
		block, _ := pem.Decode(certPEM)
		c, _ := x509.ParseCertificate(block.Bytes)
		return &tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key, Leaf: c}
	}
	src := &swapSource{}
	s := newBootstrapServer(t, fake.NewClientset(), src)
	if _, err := serverCert(s, nil); err == nil {
		t.Error("handshake without a certificate succeeded")
	}
	for _, cn := range []string{"first", "renewed"} {
		src.p.Store(leaf(cn))
		if c, err := serverCert(s, nil); err != nil || c.Subject.CommonName != cn {
			t.Errorf("after %s was made current: %v %v", cn, c, err)
		}
	}
}

// With tlsCertFile too, the file's certificate is served at once (the manager's store
// starts from it, as upstream's does), before any CSR is issued.
func TestServingCertificateTLSCertFileFirst(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ca := csrtesting.NewCA(t)
	key, _ := ecdsa.GenerateKey(ca.Key.Curve, rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "admin-made"}}, key)
	certPEM, serial := ca.SignServing(t, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))
	dir := t.TempDir()
	crt, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	keyDER, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(crt, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	writePEMFile(t, keyFile, "EC PRIVATE KEY", keyDER)

	cs := csrtesting.NewClientset(t)
	mgr, err := node.ServingCertificate(ctx, node.ServingCertConfig{Client: cs, NodeName: "n1", Hostname: "n1",
		IPs: []string{"127.0.0.1"}, CertDir: t.TempDir(), CertFile: crt, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	s := newBootstrapServer(t, cs, mgr)
	if c, err := serverCert(s, nil); err != nil || c.SerialNumber.Cmp(serial) != 0 {
		t.Errorf("served %v %v, want tlsCertFile's certificate", c, err)
	}
}
