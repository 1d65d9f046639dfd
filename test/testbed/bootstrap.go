package testbed

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"time"

	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// BootstrapGroup is the group kubeadm's bootstrap tokens authenticate into (besides
// system:bootstrappers), and the one its RBAC bindings name.
const BootstrapGroup = "system:bootstrappers:kubeadm:default-node-token"

// bootstrapRBAC makes the bindings `kubeadm init` makes for TLS bootstrap: bootstrap tokens
// may create CSRs, and kube-controller-manager's csrapproving approves a token's CSR for a
// node client certificate and a node's CSR renewing its own (csrsigning then signs them
// with the bed's CA: --cluster-signing-cert-file/--cluster-signing-key-file).
func (b *Bed) bootstrapRBAC() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, bind := range []struct{ name, group, role string }{
		{"kubeadm:kubelet-bootstrap", BootstrapGroup, "system:node-bootstrapper"},
		{"kubeadm:node-autoapprove-bootstrap", BootstrapGroup, "system:certificates.k8s.io:certificatesigningrequests:nodeclient"},
		{"kubeadm:node-autoapprove-certificate-rotation", "system:nodes", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"},
	} {
		crb := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: bind.name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: bind.role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: bind.group}},
		}
		if _, err := b.Client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("ClusterRoleBinding %s: %w", bind.name, err)
		}
	}
	return nil
}

// BootstrapToken is a bootstrap token the bed made, as `kubeadm token create` makes them.
type BootstrapToken struct {
	ID, Secret string
	// Kubeconfig authenticates with the token (what kubeadm join writes to
	// /etc/kubernetes/bootstrap-kubelet.conf).
	Kubeconfig string
}

// Token is the bearer token, "<id>.<secret>".
func (t BootstrapToken) Token() string { return t.ID + "." + t.Secret }

// User is the name the API server gives the token's requests.
func (t BootstrapToken) User() string { return "system:bootstrap:" + t.ID }

// CreateBootstrapToken creates a bootstrap token (Secret bootstrap-token-<id> in
// kube-system, valid for ttl, in BootstrapGroup) and writes a kubeconfig using it.
func (b *Bed) CreateBootstrapToken(ctx context.Context, ttl time.Duration) (BootstrapToken, error) {
	tok := BootstrapToken{ID: randomToken(6), Secret: randomToken(16)}
	secret := &v1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "bootstrap-token-" + tok.ID, Namespace: metav1.NamespaceSystem},
		Type:       v1.SecretTypeBootstrapToken,
		StringData: map[string]string{
			"description":                    "minikubelet test bed",
			"token-id":                       tok.ID,
			"token-secret":                   tok.Secret,
			"expiration":                     time.Now().Add(ttl).UTC().Format(time.RFC3339),
			"usage-bootstrap-authentication": "true",
			"usage-bootstrap-signing":        "true",
			"auth-extra-groups":              BootstrapGroup,
		},
	}
	if _, err := b.Client.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		return tok, fmt.Errorf("bootstrap token: %w", err)
	}
	tok.Kubeconfig = filepath.Join(b.Dir, "bootstrap-"+tok.ID+".kubeconfig")
	ca, err := os.ReadFile(b.PKI.CAFile())
	if err != nil {
		return tok, err
	}
	return tok, clientcmd.WriteToFile(clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"testbed": {Server: b.APIServerURL, CertificateAuthorityData: ca}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"tls-bootstrap-token-user": {Token: tok.Token()}},
		Contexts:       map[string]*clientcmdapi.Context{"tls-bootstrap-token-user@testbed": {Cluster: "testbed", AuthInfo: "tls-bootstrap-token-user"}},
		CurrentContext: "tls-bootstrap-token-user@testbed",
	}, tok.Kubeconfig)
}

// DeleteBootstrapToken removes the token's Secret and kubeconfig.
func (b *Bed) DeleteBootstrapToken(ctx context.Context, tok BootstrapToken) error {
	_ = os.Remove(tok.Kubeconfig)
	err := b.Client.CoreV1().Secrets(metav1.NamespaceSystem).Delete(ctx, "bootstrap-token-"+tok.ID, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// StartMinikubeletBootstrap starts minikubelet as `kubeadm join` sets a node up: with
// --bootstrap-kubeconfig (tok's) and a --kubeconfig path in its root folder that does not
// exist yet, which minikubelet writes once its CSR is issued. Earlier credentials of the
// node (kubeconfig, cert-dir) are removed first. extra flags come last.
func (b *Bed) StartMinikubeletBootstrap(name string, tok BootstrapToken, extra ...string) (*Kubelet, error) {
	root := filepath.Join(b.Dir, "kubelet-"+name)
	kc := filepath.Join(root, "kubelet.conf")
	for _, p := range []string{kc, filepath.Join(root, "pki")} {
		if err := os.RemoveAll(p); err != nil {
			return nil, err
		}
	}
	return b.startMinikubelet(name, kc, "", append([]string{"--bootstrap-kubeconfig=" + tok.Kubeconfig}, extra...))
}

func randomToken(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	for i := range buf {
		buf[i] = alphabet[int(buf[i])%len(alphabet)]
	}
	return string(buf)
}
