package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
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
	"slices"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
)

func TestRequestAttributes(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		verb         string
		subs         []string
	}{
		{"GET", "/healthz", "get", []string{"healthz", "proxy"}},
		{"GET", "/pods", "get", []string{"pods", "proxy"}},
		{"GET", "/configz", "get", []string{"configz", "proxy"}},
		{"GET", "/stats/summary", "get", []string{"stats"}},
		{"GET", "/stats", "get", []string{"stats"}},
		{"GET", "/metrics", "get", []string{"metrics"}},
		{"GET", "/metrics/probes", "get", []string{"metrics"}},
		{"GET", "/metrics/cadvisor", "get", []string{"metrics"}},
		{"GET", "/logs/syslog", "get", []string{"log"}},
		// As upstream: container logs are "proxy", not "log".
		{"GET", "/containerLogs/ns/p/c", "get", []string{"proxy"}},
		{"POST", "/exec/ns/p/c", "create", []string{"proxy"}},
		{"GET", "/exec/ns/p/c", "get", []string{"proxy"}},
		{"POST", "/attach/ns/p/c", "create", []string{"proxy"}},
		{"POST", "/portForward/ns/p", "create", []string{"proxy"}},
		{"POST", "/run/ns/p/c", "create", []string{"proxy"}},
		{"PUT", "/checkpoint/ns/p/c", "update", []string{"checkpoint"}},
		{"PATCH", "/podsx", "patch", []string{"proxy"}},
		{"DELETE", "/metricsfoo", "delete", []string{"proxy"}},
	} {
		verb, subs := requestAttributes(tc.method, tc.path)
		if verb != tc.verb || !slices.Equal(subs, tc.subs) {
			t.Errorf("%s %s: got %s %v, want %s %v", tc.method, tc.path, verb, subs, tc.verb, tc.subs)
		}
	}
}

func TestAuthTokens(t *testing.T) {
	rv := &reviews{
		tokens: map[string]authnv1.UserInfo{
			"alice-token": {Username: "alice", Groups: []string{"devs"}},
			"bob-token":   {Username: "bob"},
		},
		allow: func(s authzv1.SubjectAccessReviewSpec) bool { return s.User == "alice" },
	}
	s := newTestServer(t, testKubeletConfig(t), rv, nil)
	h := s.Handler()

	if w := do(t, h, "GET", "/pods", ""); w.Code != http.StatusUnauthorized || strings.TrimSpace(w.Body.String()) != "Unauthorized" {
		t.Errorf("no credentials: %d %q, want 401 Unauthorized", w.Code, w.Body)
	}
	if w := do(t, h, "GET", "/pods", "wrong"); w.Code != http.StatusUnauthorized {
		t.Errorf("unknown token: %d, want 401", w.Code)
	}
	w := do(t, h, "GET", "/pods", "bob-token")
	want := "Forbidden (user=bob, verb=get, resource=nodes, subresource(s)=[pods proxy])"
	if w.Code != http.StatusForbidden || strings.TrimSpace(w.Body.String()) != want {
		t.Errorf("denied: %d %q, want 403 %q", w.Code, w.Body, want)
	}
	if w := do(t, h, "GET", "/pods", "alice-token"); w.Code != http.StatusOK {
		t.Errorf("allowed: %d %s, want 200", w.Code, w.Body)
	}
	got := rv.lastSAR.Load()
	if got.User != "alice" || !slices.Equal(got.Groups, []string{"devs", "system:authenticated"}) || got.ResourceAttributes == nil ||
		*got.ResourceAttributes != (authzv1.ResourceAttributes{Verb: "get", Version: "v1", Resource: "nodes", Subresource: "pods", Name: "n1"}) {
		t.Errorf("SubjectAccessReview spec %+v %+v", got, got.ResourceAttributes)
	}

	// Both reviews are cached: the same requests again make no new calls.
	tokens, sars := rv.tokenCalls.Load(), rv.sarCalls.Load()
	do(t, h, "GET", "/pods", "alice-token")
	do(t, h, "GET", "/pods", "bob-token")
	do(t, h, "GET", "/pods", "wrong")
	if rv.tokenCalls.Load() != tokens || rv.sarCalls.Load() != sars {
		t.Errorf("cached answers asked again: token reviews %d -> %d, access reviews %d -> %d", tokens, rv.tokenCalls.Load(), sars, rv.sarCalls.Load())
	}
}

func TestAuthAnonymousAndAlwaysAllow(t *testing.T) {
	k := testKubeletConfig(t)
	k.Authentication.Anonymous.Enabled = ptr(true)
	rv := &reviews{allow: func(s authzv1.SubjectAccessReviewSpec) bool {
		return s.User == "system:anonymous" && slices.Equal(s.Groups, []string{"system:unauthenticated"}) && s.ResourceAttributes.Subresource == "healthz"
	}}
	s := newTestServer(t, k, rv, nil)
	if w := do(t, s.Handler(), "GET", "/healthz", ""); w.Code != http.StatusOK {
		t.Errorf("anonymous /healthz allowed by SAR: %d %s", w.Code, w.Body)
	}
	if w := do(t, s.Handler(), "GET", "/metrics", ""); w.Code != http.StatusForbidden {
		t.Errorf("anonymous /metrics denied by SAR: %d", w.Code)
	}
	// An invalid token is refused even when anonymous requests are allowed.
	if w := do(t, s.Handler(), "GET", "/healthz", "bad"); w.Code != http.StatusUnauthorized {
		t.Errorf("invalid token with anonymous on: %d, want 401", w.Code)
	}

	k = testKubeletConfig(t)
	k.Authorization.Mode = "AlwaysAllow"
	rv = &reviews{tokens: map[string]authnv1.UserInfo{"t": {Username: "x"}}, allow: func(authzv1.SubjectAccessReviewSpec) bool { return false }}
	s = newTestServer(t, k, rv, nil)
	if w := do(t, s.Handler(), "GET", "/metrics", "t"); w.Code != http.StatusOK || rv.sarCalls.Load() != 0 {
		t.Errorf("AlwaysAllow: %d, %d access reviews", w.Code, rv.sarCalls.Load())
	}
	if w := do(t, s.Handler(), "GET", "/metrics", ""); w.Code != http.StatusUnauthorized {
		t.Errorf("AlwaysAllow still authenticates: %d", w.Code)
	}
}

// TestAuthClientCertificate runs the real TLS server: a certificate from the client CA is
// its CN and O; one from another CA is refused at the handshake.
func TestAuthClientCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := testCA(t)
	caFile := dir + "/ca.crt"
	writePEMFile(t, caFile, "CERTIFICATE", ca.Raw)
	k := testKubeletConfig(t)
	k.Authentication.X509.ClientCAFile = caFile
	rv := &reviews{allow: func(s authzv1.SubjectAccessReviewSpec) bool {
		return s.User == "carol" && slices.Contains(s.Groups, "ops") && slices.Contains(s.Groups, "system:authenticated")
	}}
	s := newTestServer(t, k, rv, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	url := fmt.Sprintf("https://%s/pods", s.Addr())

	get := func(cert *tls.Certificate) (int, string, error) {
		tc := &tls.Config{InsecureSkipVerify: true} // the serving certificate is self-signed
		if cert != nil {
			tc.Certificates = []tls.Certificate{*cert}
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 10 * time.Second}
		resp, err := c.Get(url)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	carol := clientCert(t, ca, caKey, "carol", "ops")
	if code, body, err := get(&carol); err != nil || code != 200 {
		t.Errorf("carol: %d %s %v", code, body, err)
	}
	dave := clientCert(t, ca, caKey, "dave", "ops")
	if code, body, err := get(&dave); err != nil || code != 403 || !strings.Contains(body, "user=dave") {
		t.Errorf("dave: %d %s %v, want 403", code, body, err)
	}
	if code, _, err := get(nil); err != nil || code != 401 {
		t.Errorf("no certificate: %d %v, want 401", code, err)
	}
	other, otherKey := testCA(t)
	mallory := clientCert(t, other, otherKey, "carol", "ops")
	if _, _, err := get(&mallory); err == nil {
		t.Error("a certificate from another CA was accepted")
	}
}

func testCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func clientCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, orgs ...string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEMFile(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
