package node

// The kubelet API's serving certificate from the certificates API (serverTLSBootstrap,
// --rotate-server-certificates), as upstream's kubelet gets it
// (pkg/kubelet/certificate/kubelet.go, NewKubeletServerCertificateManager): client-go's
// certificate Manager asks for a kubernetes.io/kubelet-serving certificate for
// system:node:<name> with the node's host name and addresses, keeps it in
// <cert-dir>/kubelet-server-current.pem and renews it at 70-90% of its lifetime.
//
//   no kubelet-server-current.pem (and no tlsCertFile): CSR at once; until it is approved
//     and issued, Current() is nil and the kubelet API refuses handshakes
//   issued -> stored -> Current() -> served on the next handshake; renewed the same way
//
// Nothing approves kubelet-serving CSRs by default (kube-controller-manager's csrapproving
// only approves client certificates): a cluster admin (`kubectl certificate approve`) or an
// approver they run does; csrsigning then issues it.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/certificate"
	"k8s.io/klog/v2"
)

// serverCertPrefix names the store's files, as upstream's: kubelet-server-current.pem.
const serverCertPrefix = "kubelet-server"

// ServingCertConfig says what the serving certificate is for and where it is kept.
type ServingCertConfig struct {
	// Client creates the CSRs (the node's own API client).
	Client   kubernetes.Interface
	NodeName string
	// Hostname and the node's InternalIP/ExternalIP addresses are the certificate's
	// subject alternative names (with NodeName when it differs from Hostname).
	Hostname string
	IPs      []string
	// CertDir (--cert-dir) holds kubelet-server-current.pem.
	CertDir string
	// CertFile and KeyFile (tlsCertFile, tlsPrivateKeyFile), if set, are the store's pair
	// until a certificate is issued, as upstream's store has them: served at first, and
	// replaced through a CSR when they do not match the template or near their end.
	CertFile, KeyFile string
}

// ServingCertificate returns client-go's certificate manager for the kubelet's serving
// certificate, started: it requests one at once if the store has none. It stops when ctx
// ends (or on Stop).
func ServingCertificate(ctx context.Context, c ServingCertConfig) (certificate.Manager, error) {
	if c.Client == nil || c.NodeName == "" || c.CertDir == "" {
		return nil, errors.New("serving certificate: Client, NodeName and CertDir are required")
	}
	tmpl, err := servingTemplate(c.NodeName, c.Hostname, c.IPs)
	if err != nil {
		return nil, err
	}
	logger := klog.FromContext(ctx)
	store, err := certStore(logger, serverCertPrefix, c.CertDir, c.CertFile, c.KeyFile)
	if err != nil {
		return nil, err
	}
	mgr, err := certificate.NewManager(&certificate.Config{
		ClientsetFn:      func(*tls.Certificate) (kubernetes.Interface, error) { return c.Client, nil },
		Template:         tmpl,
		SignerName:       certificatesv1.KubeletServingSignerName,
		GetUsages:        certificate.DefaultKubeletServingGetUsages,
		CertificateStore: store,
		Name:             "kubelet-serving",
		Ctx:              &ctx,
	})
	if err != nil {
		return nil, fmt.Errorf("serverTLSBootstrap (--rotate-server-certificates): %w", err)
	}
	mgr.Start()
	if cur := mgr.Current(); cur != nil {
		logger.Info("Serving certificate rotation started", "certDir", c.CertDir, "subject", cur.Leaf.Subject.String(), "notAfter", cur.Leaf.NotAfter)
	} else {
		logger.Info("Serving certificate requested (kubelet-serving CSR); the kubelet API refuses connections until it is approved and issued",
			"certDir", c.CertDir, "dnsNames", tmpl.DNSNames, "ips", tmpl.IPAddresses)
	}
	return mgr, nil
}

// servingTemplate is the serving CSR's template: the node's subject, its host name (and
// node name) as DNS names, and its addresses. kube-controller-manager's kubelet-serving
// signer wants at least one of them; upstream asks only when it knows an IP address.
func servingTemplate(nodeName, hostname string, ips []string) (*x509.CertificateRequest, error) {
	tmpl := &x509.CertificateRequest{Subject: nodeSubject(nodeName)}
	for _, n := range []string{hostname, nodeName} {
		if n != "" && !slices.Contains(tmpl.DNSNames, n) {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("serving certificate: %q is not an IP address", s)
		}
		if !slices.ContainsFunc(tmpl.IPAddresses, ip.Equal) {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		}
	}
	if len(tmpl.IPAddresses) == 0 {
		return nil, errors.New("serving certificate: the node has no IP address to request it for")
	}
	return tmpl, nil
}

// certStore is client-go's file store of the pairs named prefix-*.pem in certDir (with
// certFile/keyFile as the pair it starts from, if set).
func certStore(logger klog.Logger, prefix, certDir, certFile, keyFile string) (certificate.FileStore, error) {
	store, err := certificate.NewFileStoreWithLogger(logger, prefix, certDir, certDir, certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--cert-dir %s: %w", certDir, err)
	}
	return store, nil
}
