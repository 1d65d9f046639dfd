package node

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
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/certificate"

	"github.com/minikubelet/minikubelet/pkg/kubelet/node/csrtesting"
)

// clientPair makes a key and a certificate from ca for the node, valid between the given times.
func clientPair(t *testing.T, ca *csrtesting.CA, node string, notBefore, notAfter time.Time) (certPEM, keyPEM []byte, serial *big.Int) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, serial = ca.Issue(t, &key.PublicKey, nodeSubject(node), notBefore, notAfter)
	der, _ := x509.MarshalECPrivateKey(key)
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), serial
}

type signerOpts struct {
	deny     bool
	validity time.Duration
}

// signer approves (or denies) every CSR and has ca issue it, as kube-controller-manager's
// csrapproving and csrsigning would, checking each is what a kubelet must ask for. It
// sends the serial of each certificate it issues, and keeps writing the issued CSRs again
// so that a waiter that listed just before the update still sees it (the fake's watch has
// no resource versions to resume from).
func signer(ctx context.Context, t *testing.T, ca *csrtesting.CA, client kubernetes.Interface, node string, o signerOpts) <-chan *big.Int {
	t.Helper()
	w, err := client.CertificatesV1().CertificateSigningRequests().Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if o.validity == 0 {
		o.validity = time.Hour
	}
	serials := make(chan *big.Int, 10)
	var mu sync.Mutex
	var done []*certificatesv1.CertificateSigningRequest
	go func() {
		defer w.Stop()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				mu.Lock()
				for _, r := range done {
					_, _ = client.CertificatesV1().CertificateSigningRequests().UpdateStatus(ctx, r, metav1.UpdateOptions{})
				}
				mu.Unlock()
			case ev := <-w.ResultChan():
				r, ok := ev.Object.(*certificatesv1.CertificateSigningRequest)
				if ev.Type != watch.Added || !ok {
					continue
				}
				r = r.DeepCopy()
				if err := checkNodeCSR(r, node); err != nil {
					t.Errorf("CSR %s: %v", r.Name, err)
					continue
				}
				if o.deny {
					r.Status.Conditions = append(r.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
						Type: certificatesv1.CertificateDenied, Status: v1.ConditionTrue, Reason: "TestDenied", Message: "no"})
				} else {
					block, _ := pem.Decode(r.Spec.Request)
					req, _ := x509.ParseCertificateRequest(block.Bytes)
					var serial *big.Int
					r.Status.Certificate, serial = ca.Issue(t, req.PublicKey, req.Subject, time.Now().Add(-time.Minute), time.Now().Add(o.validity))
					r.Status.Conditions = append(r.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
						Type: certificatesv1.CertificateApproved, Status: v1.ConditionTrue, Reason: "AutoApproved"})
					serials <- serial
				}
				mu.Lock()
				done = append(done, r)
				mu.Unlock()
			}
		}
	}()
	return serials
}

func checkNodeCSR(r *certificatesv1.CertificateSigningRequest, node string) error {
	if r.Spec.SignerName != certificatesv1.KubeAPIServerClientKubeletSignerName {
		return fmt.Errorf("signerName %q", r.Spec.SignerName)
	}
	if want := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}; !slices.Equal(r.Spec.Usages, want) {
		return fmt.Errorf("usages %v, want %v", r.Spec.Usages, want)
	}
	block, _ := pem.Decode(r.Spec.Request)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return fmt.Errorf("request is not a PEM certificate request")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return err
	}
	if req.Subject.CommonName != "system:node:"+node || !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) {
		return fmt.Errorf("subject %s", req.Subject)
	}
	if k, ok := req.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		return fmt.Errorf("key %T, want ECDSA P-256", req.PublicKey)
	}
	return req.CheckSignature()
}

// writeTestKubeconfig writes a kubeconfig for server with the CA and either a token or a
// client certificate file.
func writeTestKubeconfig(t *testing.T, path, server string, caPEM []byte, token, certFile string) {
	t.Helper()
	auth := &clientcmdapi.AuthInfo{Token: token}
	if certFile != "" {
		auth = &clientcmdapi.AuthInfo{ClientCertificate: certFile, ClientKey: certFile}
	}
	err := clientcmd.WriteToFile(clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"c": {Server: server, CertificateAuthorityData: caPEM}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"u": auth},
		Contexts:       map[string]*clientcmdapi.Context{"x": {Cluster: "c", AuthInfo: "u"}},
		CurrentContext: "x",
	}, path)
	if err != nil {
		t.Fatal(err)
	}
}

type bootstrapFixture struct {
	dir, boot, kubeconfig, certDir string
	ca                             *csrtesting.CA
	client                         *fake.Clientset
}

func newBootstrapFixture(t *testing.T) *bootstrapFixture {
	dir := t.TempDir()
	f := &bootstrapFixture{dir: dir, boot: filepath.Join(dir, "bootstrap-kubelet.conf"), kubeconfig: filepath.Join(dir, "etc", "kubelet.conf"),
		certDir: filepath.Join(dir, "pki"), ca: csrtesting.NewCA(t), client: csrtesting.NewClientset(t)}
	writeTestKubeconfig(t, f.boot, "https://127.0.0.1:6443", f.ca.PEM, "abcdef.0123456789abcdef", "")
	return f
}

func (f *bootstrapFixture) config() ClientCertConfig {
	return ClientCertConfig{KubeconfigPath: f.kubeconfig, BootstrapKubeconfigPath: f.boot, CertDir: f.certDir, NodeName: "node-a",
		newClient: func(*rest.Config) (kubernetes.Interface, error) { return f.client, nil }}
}

func (f *bootstrapFixture) csrCreates() int {
	n := 0
	for _, a := range f.client.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "certificatesigningrequests" {
			n++
		}
	}
	return n
}

func TestBootstrapWritesCertificateAndKubeconfig(t *testing.T) {
	f := newBootstrapFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	signer(ctx, t, f.ca, f.client, "node-a", signerOpts{})

	cfg, err := ClientConfig(ctx, f.config())
	if err != nil {
		t.Fatal(err)
	}
	current := filepath.Join(f.certDir, "kubelet-client-current.pem")
	if cfg.Host != "https://127.0.0.1:6443" || cfg.CertFile != current || cfg.KeyFile != current || string(cfg.CAData) != string(f.ca.PEM) || cfg.BearerToken != "" {
		t.Errorf("client config: host %q cert %q key %q token %q CA from bootstrap %v", cfg.Host, cfg.CertFile, cfg.KeyFile, cfg.BearerToken, string(cfg.CAData) == string(f.ca.PEM))
	}
	target, err := os.Readlink(current)
	if err != nil || !regexp.MustCompile(`^kubelet-client-\d{4}(-\d\d){5}\.pem$`).MatchString(filepath.Base(target)) {
		t.Errorf("%s -> %q (%v), want a symlink to the dated file", current, target, err)
	}
	pair, err := tls.LoadX509KeyPair(current, current)
	if err != nil {
		t.Fatalf("certificate and key in one file: %v", err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	if leaf.Subject.CommonName != "system:node:node-a" || !slices.Equal(leaf.Subject.Organization, []string{"system:nodes"}) {
		t.Errorf("subject %s", leaf.Subject)
	}
	if fi, err := os.Stat(current); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("%s readable by others: %v %v", current, fi.Mode(), err)
	}
	if _, err := os.Stat(filepath.Join(f.certDir, pendingKeyFile)); !os.IsNotExist(err) {
		t.Errorf("pending key left behind: %v", err)
	}
	csrs, _ := f.client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if len(csrs.Items) != 1 || !strings.HasPrefix(csrs.Items[0].Name, "node-csr-") {
		t.Errorf("CSRs %v", csrs.Items)
	}

	// The kubeconfig is valid now: no new request.
	if _, err := ClientConfig(ctx, f.config()); err != nil || f.csrCreates() != 1 {
		t.Errorf("second start: err %v, %d CSRs created, want 1", err, f.csrCreates())
	}
}

func TestBootstrapReplacesExpiredKubeconfig(t *testing.T) {
	f := newBootstrapFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	certPEM, keyPEM, _ := clientPair(t, f.ca, "node-a", time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	old := filepath.Join(f.dir, "old.pem")
	if err := os.WriteFile(old, append(certPEM, keyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.MkdirAll(filepath.Dir(f.kubeconfig), 0o755)
	writeTestKubeconfig(t, f.kubeconfig, "https://127.0.0.1:6443", f.ca.PEM, "", old)
	if ok, why, _ := kubeconfigValid(f.kubeconfig, time.Now()); ok || !strings.Contains(why, "expired") {
		t.Fatalf("expired kubeconfig: valid %v (%s)", ok, why)
	}
	signer(ctx, t, f.ca, f.client, "node-a", signerOpts{})
	cfg, err := ClientConfig(ctx, f.config())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CertFile != filepath.Join(f.certDir, "kubelet-client-current.pem") || f.csrCreates() != 1 {
		t.Errorf("cert %q, %d CSRs", cfg.CertFile, f.csrCreates())
	}
}

// A restart while the CSR waits for approval finds the same CSR again (same key, same
// name) instead of making another.
func TestBootstrapResumesPendingRequest(t *testing.T) {
	f := newBootstrapFixture(t)
	ctx1, cancel1 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel1()
	if _, err := ClientConfig(ctx1, f.config()); err == nil {
		t.Fatal("bootstrap returned without an approved CSR")
	}
	if _, err := os.Stat(filepath.Join(f.certDir, pendingKeyFile)); err != nil {
		t.Fatalf("pending key not kept: %v", err)
	}
	if _, err := os.Stat(f.kubeconfig); !os.IsNotExist(err) {
		t.Fatalf("kubeconfig written without a certificate: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The CSR already exists: the signer sees it as its watch starts.
	signer(ctx, t, f.ca, f.client, "node-a", signerOpts{})
	if _, err := ClientConfig(ctx, f.config()); err != nil {
		t.Fatal(err)
	}
	csrs, _ := f.client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if len(csrs.Items) != 1 {
		t.Errorf("%d CSRs, want the first one reused", len(csrs.Items))
	}
}

func TestBootstrapDenied(t *testing.T) {
	f := newBootstrapFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	signer(ctx, t, f.ca, f.client, "node-a", signerOpts{deny: true})
	_, err := ClientConfig(ctx, f.config())
	if err == nil || !strings.Contains(err.Error(), "denied") || !strings.Contains(err.Error(), "--bootstrap-kubeconfig") {
		t.Fatalf("err %v, want a denial naming --bootstrap-kubeconfig", err)
	}
	if _, err := os.Stat(filepath.Join(f.certDir, pendingKeyFile)); !os.IsNotExist(err) {
		t.Errorf("the denied key is kept (%v): the next attempt would ask again with it", err)
	}
}

func TestBootstrapErrorsNameTheFlag(t *testing.T) {
	f := newBootstrapFixture(t)
	c := f.config()
	c.BootstrapKubeconfigPath = filepath.Join(f.dir, "missing.conf")
	if _, err := ClientConfig(context.Background(), c); err == nil || !strings.Contains(err.Error(), "--bootstrap-kubeconfig") {
		t.Errorf("missing bootstrap kubeconfig: %v", err)
	}
	c = f.config()
	c.BootstrapKubeconfigPath = ""
	if _, err := ClientConfig(context.Background(), c); err == nil || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Errorf("missing kubeconfig without bootstrap: %v", err)
	}
}

// With rotation, a certificate near its end is renewed through a CSR authenticated with
// the current one, the store's current file follows, and the client's next handshakes
// present the new certificate.
func TestRotationPresentsRenewedCertificate(t *testing.T) {
	defer func(p time.Duration) { rotationCheckPeriod = p }(rotationCheckPeriod)
	rotationCheckPeriod = 20 * time.Millisecond
	f := newBootstrapFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// An API server stand-in that requires client certificates and says whose it got.
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvCert, _ := f.ca.Issue(t, &srvKey.PublicKey, pkix.Name{CommonName: "apiserver"}, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), "127.0.0.1")
	srvKeyDER, _ := x509.MarshalECPrivateKey(srvKey)
	pair, err := tls.X509KeyPair(srvCert, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: srvKeyDER}))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(f.ca.Cert)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.TLS.PeerCertificates[0].SerialNumber.String())
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()

	// The current certificate is at 98% of its lifetime: due for renewal at once.
	certPEM, keyPEM, oldSerial := clientPair(t, f.ca, "node-a", time.Now().Add(-time.Hour), time.Now().Add(time.Minute))
	store, err := certificate.NewFileStore(clientCertPrefix, f.certDir, f.certDir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Update(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	_ = os.MkdirAll(filepath.Dir(f.kubeconfig), 0o755)
	writeTestKubeconfig(t, f.kubeconfig, srv.URL, f.ca.PEM, "", store.CurrentPath())

	c := f.config()
	c.BootstrapKubeconfigPath = "" // renewals use the current certificate
	c.Rotate = true
	served := func(hc *http.Client) string {
		resp, err := hc.Get(srv.URL)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}

	issued := signer(ctx, t, f.ca, f.client, "node-a", signerOpts{})
	cfg, err := ClientConfig(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A first connection, made with whichever certificate is current, kept alive.
	if got := served(hc); got != oldSerial.String() {
		t.Logf("first request presented %s (renewed already)", got)
	}
	var newSerial *big.Int
	select {
	case newSerial = <-issued:
	case <-ctx.Done():
		t.Fatal("no renewal CSR")
	}
	deadline := time.Now().Add(10 * time.Second)
	for served(hc) != newSerial.String() {
		if time.Now().After(deadline) {
			t.Fatalf("client still presents %s, want the renewed %s", served(hc), newSerial)
		}
		time.Sleep(20 * time.Millisecond)
	}
	now, err := tls.LoadX509KeyPair(store.CurrentPath(), store.CurrentPath())
	if err != nil {
		t.Fatal(err)
	}
	if leaf, _ := x509.ParseCertificate(now.Certificate[0]); leaf.SerialNumber.Cmp(newSerial) != 0 {
		t.Errorf("%s holds serial %s, want %s", store.CurrentPath(), leaf.SerialNumber, newSerial)
	}
	// The renewal was asked for with the node's own certificate, not bootstrap credentials.
	if f.csrCreates() != 1 {
		t.Errorf("%d CSRs created, want 1", f.csrCreates())
	}
}
