package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// nodeCSRs lists the CSRs asking for node's client certificate.
func nodeCSRs(ctx context.Context, t *testing.T, node string) []certificatesv1.CertificateSigningRequest {
	t.Helper()
	list, err := bed.Client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []certificatesv1.CertificateSigningRequest
	for _, r := range list.Items {
		block, _ := pem.Decode(r.Spec.Request)
		if block == nil {
			continue
		}
		if req, err := x509.ParseCertificateRequest(block.Bytes); err == nil && req.Subject.CommonName == "system:node:"+node {
			out = append(out, r)
		}
	}
	return out
}

func deleteNodeCSRs(t *testing.T, node string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, r := range nodeCSRs(ctx, t, node) {
		_ = bed.Client.CertificatesV1().CertificateSigningRequests().Delete(ctx, r.Name, metav1.DeleteOptions{})
	}
}

func csrCondition(r *certificatesv1.CertificateSigningRequest, typ certificatesv1.RequestConditionType) *certificatesv1.CertificateSigningRequestCondition {
	for i := range r.Status.Conditions {
		if r.Status.Conditions[i].Type == typ {
			return &r.Status.Conditions[i]
		}
	}
	return nil
}

// stopWithCleanup stops the node agent when the test ends (printing its log tail if the
// test failed) and removes its Node and CSRs.
func stopWithCleanup(t *testing.T, k *testbed.Kubelet) {
	t.Cleanup(func() {
		_ = k.Stop(15 * time.Second)
		if t.Failed() {
			t.Logf("node agent %s log tail:\n%s", k.NodeName, k.Tail(60))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = bed.Client.CoreV1().Nodes().Delete(ctx, k.NodeName, deleteNow)
		deleteNodeCSRs(t, k.NodeName)
	})
}

// A node given only a bootstrap token joins as `kubeadm join` makes it: its CSR is
// approved (csrapproving, nodeclient) and signed (csrsigning) by the real
// controller-manager, the kubeconfig it writes authenticates as system:node:<name>, and
// the node registers, becomes Ready and runs a pod.
func TestBootstrapJoin(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	const name = "bootstrap-join"
	tok, err := bed.CreateBootstrapToken(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bed.DeleteBootstrapToken(context.Background(), tok) })
	deleteNodeCSRs(t, name)

	k, err := bed.StartMinikubeletBootstrap(name, tok, "--rotate-certificates")
	if err != nil {
		t.Fatal(err)
	}
	stopWithCleanup(t, k)
	if _, err := os.Stat(k.Kubeconfig); err == nil {
		t.Fatalf("%s exists before the bootstrap", k.Kubeconfig)
	}

	node := watchNode(ctx, t, name, isReady)
	if !strings.Contains(lastRunLog(k), "TLS bootstrap done") {
		t.Errorf("no TLS bootstrap in the log")
	}

	// The CSR: the token's user asked, for the node's name, with upstream's signer and
	// usages, and the controller-manager approved and issued it.
	csrs := nodeCSRs(ctx, t, name)
	if len(csrs) != 1 {
		t.Fatalf("%d CSRs for system:node:%s, want 1", len(csrs), name)
	}
	r := csrs[0]
	if r.Spec.Username != tok.User() || !slices.Contains(r.Spec.Groups, testbed.BootstrapGroup) {
		t.Errorf("CSR requested by %s %v, want %s in %s", r.Spec.Username, r.Spec.Groups, tok.User(), testbed.BootstrapGroup)
	}
	if r.Spec.SignerName != certificatesv1.KubeAPIServerClientKubeletSignerName ||
		!slices.Equal(r.Spec.Usages, []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth}) {
		t.Errorf("CSR signer %s usages %v", r.Spec.SignerName, r.Spec.Usages)
	}
	if c := csrCondition(&r, certificatesv1.CertificateApproved); c == nil || c.Reason != "AutoApproved" || len(r.Status.Certificate) == 0 {
		t.Errorf("CSR not auto-approved and issued: %+v", r.Status.Conditions)
	}

	// The written kubeconfig: the node's own identity, from <cert-dir>/kubelet-client-current.pem.
	current := filepath.Join(k.RootDir, "pki", "kubelet-client-current.pem")
	if target, err := os.Readlink(current); err != nil || !strings.HasPrefix(filepath.Base(target), "kubelet-client-") {
		t.Errorf("%s -> %q, %v", current, target, err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", k.Kubeconfig)
	if err != nil {
		t.Fatalf("written kubeconfig: %v", err)
	}
	if rc.CertFile != current || rc.Host != bed.APIServerURL || rc.BearerToken != "" {
		t.Errorf("written kubeconfig: host %s cert %s token %q", rc.Host, rc.CertFile, rc.BearerToken)
	}
	nc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	review, err := nc.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectReview with the written kubeconfig: %v", err)
	}
	if u := review.Status.UserInfo; u.Username != "system:node:"+name || !slices.Contains(u.Groups, "system:nodes") {
		t.Errorf("written kubeconfig authenticates as %s %v", u.Username, u.Groups)
	}
	// The Node authorizer lets it read its own Node.
	if _, err := nc.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); err != nil {
		t.Errorf("node reading its own Node: %v", err)
	}
	if node.Status.NodeInfo.KubeletVersion == "" {
		t.Errorf("node status not reported: %+v", node.Status.NodeInfo)
	}

	// A pod runs on it.
	p := createPod(ctx, t, newPod(name, "sleep", "3600"))
	watchPod(ctx, t, p, "Running and Ready", podReady)

	// A restart with the kubeconfig in place does not bootstrap again.
	if err := k.Stop(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	if _, err := bed.RestartKubelet(k); err != nil {
		t.Fatal(err)
	}
	waitLeaseRenewedAfter(ctx, t, name, restarted)
	if n := len(nodeCSRs(ctx, t, name)); n != 1 {
		t.Errorf("%d CSRs after a restart, want still 1", n)
	}
	if log := lastRunLog(k); strings.Contains(log, "TLS bootstrap") {
		t.Errorf("bootstrapped again after a restart:\n%s", log)
	}
}

// lastRunLog is the node agent's log since it was last started.
func lastRunLog(k *testbed.Kubelet) string {
	log := k.Tail(2000)
	if i := strings.LastIndex(log, "=== "); i >= 0 {
		return log[i:]
	}
	return log
}

// waitLeaseRenewedAfter waits until node's Lease is renewed after t0.
func waitLeaseRenewedAfter(ctx context.Context, t *testing.T, node string, t0 time.Time) {
	t.Helper()
	watchUntil(ctx, t, func(o metav1.ListOptions) (watch.Interface, error) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", node).String()
		return bed.Client.CoordinationV1().Leases("kube-node-lease").Watch(ctx, o)
	}, func(o any) bool {
		l := o.(*coordinationv1.Lease)
		return l.Spec.RenewTime != nil && l.Spec.RenewTime.After(t0)
	})
}

// issueNodeCert signs a client certificate for node with the bed's CA, valid from
// notBefore to notAfter, and writes certificate and key to dir.
func issueNodeCert(t *testing.T, dir, node string, notBefore, notAfter time.Time) (string, *big.Int) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{SerialNumber: serial, NotBefore: notBefore, NotAfter: notAfter,
		Subject:  pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, bed.PKI.CACert, &key.PublicKey, bed.PKI.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	path := filepath.Join(dir, node+"-short.pem")
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})...)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, serial
}

// With --rotate-certificates, a client certificate near its end is renewed with a CSR
// the node makes with its own certificate (selfnodeclient auto-approval), and the node
// keeps renewing its Lease after the old certificate expired: it uses the new one.
func TestBootstrapRotation(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	const name = "bootstrap-rotate"
	deleteNodeCSRs(t, name)
	// 95% of its lifetime gone: due for renewal at once, and expired 30s from now.
	notAfter := time.Now().Add(30 * time.Second)
	pemPath, oldSerial := issueNodeCert(t, bed.Dir, name, time.Now().Add(-10*time.Minute), notAfter)
	kc := filepath.Join(bed.Dir, name+"-short.kubeconfig")
	if err := testbed.WriteKubeconfig(kc, bed.APIServerURL, bed.PKI.CAFile(), pemPath, pemPath); err != nil {
		t.Fatal(err)
	}
	_ = os.RemoveAll(filepath.Join(bed.Dir, "kubelet-"+name, "pki"))
	k, err := bed.StartMinikubelet(name, "--kubeconfig="+kc, "--rotate-certificates")
	if err != nil {
		t.Fatal(err)
	}
	stopWithCleanup(t, k)
	watchNode(ctx, t, name, isReady)

	// The renewal CSR: asked by the node itself, approved and issued.
	var renewal certificatesv1.CertificateSigningRequest
	watchUntil(ctx, t, func(o metav1.ListOptions) (watch.Interface, error) {
		return bed.Client.CertificatesV1().CertificateSigningRequests().Watch(ctx, o)
	}, func(o any) bool {
		r := o.(*certificatesv1.CertificateSigningRequest)
		if r.Spec.Username != "system:node:"+name || len(r.Status.Certificate) == 0 {
			return false
		}
		renewal = *r
		return true
	})
	if c := csrCondition(&renewal, certificatesv1.CertificateApproved); c == nil || c.Reason != "AutoApproved" {
		t.Errorf("renewal CSR conditions %+v", renewal.Status.Conditions)
	}

	// The new certificate is in <cert-dir>/kubelet-client-current.pem.
	current := filepath.Join(k.RootDir, "pki", "kubelet-client-current.pem")
	var pair tls.Certificate
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pair, err = tls.LoadX509KeyPair(current, current); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", current, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	if leaf.SerialNumber.Cmp(oldSerial) == 0 || !leaf.NotAfter.After(notAfter.Add(time.Hour)) || leaf.Subject.CommonName != "system:node:"+name {
		t.Errorf("current certificate %s serial %s until %s, want a renewed one", leaf.Subject, leaf.SerialNumber, leaf.NotAfter)
	}

	// Lease renewals carry on past the old certificate's end.
	waitLeaseRenewedAfter(ctx, t, name, notAfter.Add(5*time.Second))
	if !strings.Contains(lastRunLog(k), "Client certificate rotated") {
		t.Errorf("no rotation in the log")
	}
}
