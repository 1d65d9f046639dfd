package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// waitServingCSR waits for node's kubelet-serving CSR.
func waitServingCSR(ctx context.Context, t *testing.T, node string) certificatesv1.CertificateSigningRequest {
	t.Helper()
	for {
		for _, r := range nodeCSRs(ctx, t, node) {
			if r.Spec.SignerName == certificatesv1.KubeletServingSignerName {
				return r
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %s CSR for system:node:%s", certificatesv1.KubeletServingSignerName, node)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// With --rotate-server-certificates the node asks for its serving certificate with a
// kubelet-serving CSR, as upstream's kubelet does, and serves nothing until it is issued.
// Nothing in the cluster approves such CSRs (upstream neither): the test approves it as an
// admin would (`kubectl certificate approve`), the controller-manager signs it with the
// bed's CA, and the node serves it at once: a client that verifies the kubelet against
// that CA connects to 127.0.0.1 (the certificate's IP SAN), and the API server still
// reaches the node for `kubectl logs`.
func TestBootstrapServingCertificate(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	const name = "bootstrap-serving"
	deleteNodeCSRs(t, name)
	k, err := bed.StartMinikubelet(name, "--rotate-server-certificates")
	if err != nil {
		t.Fatal(err)
	}
	stopWithCleanup(t, k)
	watchNode(ctx, t, name, isReady)

	// The CSR: the node itself asked, for its name and address, with upstream's signer and
	// usages (an ECDSA key: no key encipherment), and nobody approved it.
	r := waitServingCSR(ctx, t, name)
	if r.Spec.Username != "system:node:"+name || !slices.Contains(r.Spec.Groups, "system:nodes") {
		t.Errorf("CSR requested by %s %v, want system:node:%s in system:nodes", r.Spec.Username, r.Spec.Groups, name)
	}
	if want := []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth}; !slices.Equal(r.Spec.Usages, want) {
		t.Errorf("CSR usages %v, want %v", r.Spec.Usages, want)
	}
	block, _ := pem.Decode(r.Spec.Request)
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, ip := range req.IPAddresses {
		ips = append(ips, ip.String())
	}
	if !slices.Equal(req.Subject.Organization, []string{"system:nodes"}) || !slices.Equal(req.DNSNames, []string{name}) ||
		!slices.Equal(ips, []string{testbed.NodeIP}) {
		t.Errorf("CSR subject %s, DNS names %v, IPs %v; want O=system:nodes, [%s], [%s]", req.Subject, req.DNSNames, ips, name, testbed.NodeIP)
	}
	if len(r.Status.Conditions) != 0 || len(r.Status.Certificate) != 0 {
		t.Fatalf("kubelet-serving CSR approved or issued without an admin: %+v", r.Status.Conditions)
	}

	// Before approval the port is open but no TLS handshake succeeds.
	addr := net.JoinHostPort(testbed.NodeIP, strconv.Itoa(k.Port))
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the kubelet API does not listen on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}); err == nil {
		c.Close()
		t.Fatal("TLS handshake succeeded before the serving CSR was approved")
	}
	// The server logs the handshake's error just after it sent the client its alert.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(lastRunLog(k), "no serving certificate available for the kubelet"); {
		if time.Now().After(deadline) {
			t.Error("the node's log does not have upstream's handshake error")
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The admin approves; csrsigning issues it.
	r.Status.Conditions = append(r.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: certificatesv1.CertificateApproved, Status: v1.ConditionTrue, Reason: "E2EApproved", Message: "approved by the e2e test"})
	if _, err := bed.Client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, r.Name, &r, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	approved := time.Now()

	// A client that trusts only the bed's CA and checks the IP SAN connects, and is served
	// the issued certificate, with no restart.
	caPEM, err := os.ReadFile(bed.PKI.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate in " + bed.PKI.CAFile())
	}
	crt, key, err := bed.PKI.Issue("e2e-serving-admin", "e2e-serving-admin", []string{"system:masters"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{RootCAs: roots, ServerName: testbed.NodeIP, Certificates: []tls.Certificate{client}}
	var leaf *x509.Certificate
	for leaf == nil {
		c, err := tls.Dial("tcp", addr, tc)
		if err == nil {
			leaf = c.ConnectionState().PeerCertificates[0]
			c.Close()
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no verified TLS connection after the approval: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("CSR %s approved; its certificate (serial %v) served %v later", r.Name, leaf.SerialNumber, time.Since(approved).Round(time.Millisecond))
	if leaf.Issuer.String() != bed.PKI.CACert.Subject.String() || leaf.Subject.CommonName != "system:node:"+name {
		t.Errorf("served certificate %s issued by %s, want system:node:%s by %s", leaf.Subject, leaf.Issuer, name, bed.PKI.CACert.Subject)
	}
	issued, err := bed.Client.CertificatesV1().CertificateSigningRequests().Get(ctx, r.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(issued.Status.Certificate); b == nil || !slices.Equal(b.Bytes, leaf.Raw) {
		t.Errorf("the served certificate is not the one CSR %s was issued", r.Name)
	}
	current := filepath.Join(k.RootDir, "pki", "kubelet-server-current.pem")
	if target, err := os.Readlink(current); err != nil || !strings.HasPrefix(filepath.Base(target), "kubelet-server-") {
		t.Errorf("%s -> %q, %v", current, target, err)
	}

	// The kubelet API over that verified connection, with a client certificate.
	if code, body := kubeletGetTLS(ctx, t, k, tc, "/healthz", ""); code != 200 || body != "ok" {
		t.Errorf("/healthz over the verified connection: %d %q", code, body)
	}
	code, body := kubeletGetTLS(ctx, t, k, tc, "/metrics", "")
	if code != 200 || !strings.Contains(body, "\nkubelet_certificate_manager_server_ttl_seconds ") {
		t.Errorf("/metrics: %d, kubelet_certificate_manager_server_ttl_seconds missing", code)
	}

	// The API server reaches the node for `kubectl logs`.
	pod := newPod(name, "sh", "-c", "echo served-with-a-csr-certificate")
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	p := watchPod(ctx, t, createPod(ctx, t, pod), "Succeeded", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodSucceeded })
	if got, err := podLogs(ctx, p, &v1.PodLogOptions{}); err != nil || got != "served-with-a-csr-certificate\n" {
		t.Errorf("kubectl logs: %q %v", got, err)
	}
}
