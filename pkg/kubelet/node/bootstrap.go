package node

// TLS bootstrap and client certificate rotation, as upstream's kubelet does them
// (pkg/kubelet/certificate/bootstrap and cmd/kubelet/app/server.go), with client-go's
// libraries doing the work: util/certificate/csr requests the certificate and waits for it,
// util/certificate's file store keeps it in <cert-dir>/kubelet-client-<date>.pem behind
// the kubelet-client-current.pem symlink, and its Manager renews it.
//
//   --kubeconfig valid ---------------------------------------------> use it
//   missing / unreadable / no cert / expired, with --bootstrap-kubeconfig:
//     key (kept in kubelet-client.key.tmp until issued, so a restart reuses the CSR)
//     -> CSR kubernetes.io/kube-apiserver-client-kubelet, CN system:node:<name>, O system:nodes
//     -> wait (watch) until approved and issued -> store -> write --kubeconfig -> use it
//   rotateCertificates: Manager renews at 70-90% of the lifetime; the client presents
//     Manager.Current() on every handshake and drops its connections when it changes.

import (
	"context"
	"crypto"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/certificate"
	"k8s.io/client-go/util/certificate/csr"
	"k8s.io/client-go/util/connrotation"
	"k8s.io/client-go/util/keyutil"
	"k8s.io/klog/v2"
)

const (
	// clientCertPrefix names the store's files, as upstream's: kubelet-client-current.pem.
	clientCertPrefix = "kubelet-client"
	// pendingKeyFile holds the key of a CSR not issued yet.
	pendingKeyFile = "kubelet-client.key.tmp"
	// bootstrapWait bounds the wait for the CSR to be approved and issued (upstream's hour).
	bootstrapWait = time.Hour
)

// rotationCheckPeriod is how often the client looks for a renewed certificate.
var rotationCheckPeriod = time.Second

// ClientCertConfig says where the node's API credentials come from.
type ClientCertConfig struct {
	// KubeconfigPath (--kubeconfig) is read, or written after a bootstrap.
	KubeconfigPath string
	// BootstrapKubeconfigPath (--bootstrap-kubeconfig), if set, is used to request the
	// client certificate when KubeconfigPath is missing or its certificate expired.
	BootstrapKubeconfigPath string
	// CertDir (--cert-dir) holds kubelet-client-current.pem (certificate and key).
	CertDir  string
	NodeName string
	// Rotate (rotateCertificates) renews the client certificate before it expires.
	Rotate bool

	// newClient makes the clients for CSRs; tests give a fake clientset.
	newClient func(*rest.Config) (kubernetes.Interface, error)
}

// ClientConfig returns the REST config of the node's API clients, bootstrapping the
// client certificate first when needed (blocking until the CSR is issued or ctx ends).
// With Rotate, the certificate is renewed in the background until ctx ends, and the
// returned config always presents the current one.
func ClientConfig(ctx context.Context, c ClientCertConfig) (*rest.Config, error) {
	if c.newClient == nil {
		c.newClient = func(cfg *rest.Config) (kubernetes.Interface, error) { return kubernetes.NewForConfig(cfg) }
	}
	if c.BootstrapKubeconfigPath != "" {
		if err := bootstrap(ctx, c); err != nil {
			return nil, err
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.KubeconfigPath)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %w", c.KubeconfigPath, err)
	}
	if !c.Rotate {
		return cfg, nil
	}
	return rotate(ctx, c, cfg)
}

// kubeconfigValid says whether path is a kubeconfig with an unexpired client certificate,
// and if not, why (upstream bootstraps again in every such case). Only a path that cannot
// be looked at is an error.
func kubeconfigValid(path string, now time.Time) (bool, string, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return false, "kubeconfig does not exist", nil
	} else if err != nil {
		return false, "", fmt.Errorf("--kubeconfig: %w", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return false, fmt.Sprintf("kubeconfig cannot be read: %v", err), nil
	}
	data := cfg.CertData
	if len(data) == 0 && cfg.CertFile != "" {
		if data, err = os.ReadFile(cfg.CertFile); err != nil {
			return false, fmt.Sprintf("client certificate cannot be read: %v", err), nil
		}
	}
	if len(data) == 0 {
		return false, "kubeconfig has no client certificate", nil
	}
	certs, err := certutil.ParseCertsPEM(data)
	if err != nil {
		return false, fmt.Sprintf("client certificate cannot be parsed: %v", err), nil
	}
	for _, c := range certs {
		if now.After(c.NotAfter) {
			return false, fmt.Sprintf("client certificate expired at %s", c.NotAfter.Format(time.RFC3339)), nil
		}
	}
	return true, "", nil
}

// bootstrap replaces a missing or expired --kubeconfig with one whose client certificate
// was requested with the bootstrap credentials.
func bootstrap(ctx context.Context, c ClientCertConfig) error {
	logger := klog.FromContext(ctx)
	ok, why, err := kubeconfigValid(c.KubeconfigPath, time.Now())
	if err != nil || ok {
		return err
	}
	logger.Info("TLS bootstrap: requesting a client certificate", "reason", why, "kubeconfig", c.KubeconfigPath, "bootstrapKubeconfig", c.BootstrapKubeconfigPath)
	bootCfg, err := clientcmd.BuildConfigFromFlags("", c.BootstrapKubeconfigPath)
	if err != nil {
		return fmt.Errorf("--bootstrap-kubeconfig %s: %w", c.BootstrapKubeconfigPath, err)
	}
	client, err := c.newClient(bootCfg)
	if err != nil {
		return fmt.Errorf("--bootstrap-kubeconfig %s: %w", c.BootstrapKubeconfigPath, err)
	}
	store, err := certStore(logger, clientCertPrefix, c.CertDir, "", "")
	if err != nil {
		return err
	}
	keyPath := filepath.Join(c.CertDir, pendingKeyFile)
	keyPEM, _, err := keyutil.LoadOrGenerateKeyFile(keyPath)
	if err != nil {
		return fmt.Errorf("--cert-dir %s: %w", c.CertDir, err)
	}
	certPEM, err := requestNodeCertificate(ctx, client, keyPEM, c.NodeName)
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			// Denied or failed: the next attempt starts with a new key and a new CSR.
			_ = os.Remove(keyPath)
		}
		return fmt.Errorf("TLS bootstrap (--bootstrap-kubeconfig %s): %w", c.BootstrapKubeconfigPath, err)
	}
	cert, err := store.Update(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("--cert-dir %s: %w", c.CertDir, err)
	}
	_ = os.Remove(keyPath)
	if err := writeKubeconfig(c.KubeconfigPath, bootCfg, store.CurrentPath()); err != nil {
		return fmt.Errorf("--kubeconfig %s: %w", c.KubeconfigPath, err)
	}
	logger.Info("TLS bootstrap done", "kubeconfig", c.KubeconfigPath, "certificate", store.CurrentPath(), "subject", cert.Leaf.Subject.String(), "notAfter", cert.Leaf.NotAfter)
	return nil
}

// nodeSubject is the subject of the node's certificates: the one the Node authorizer
// expects of its client certificate, and the one the kubelet-serving signer requires.
func nodeSubject(nodeName string) pkix.Name {
	return pkix.Name{CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}}
}

// requestNodeCertificate creates the CSR for the node's client certificate (or finds the
// one an earlier attempt with the same key made), retrying with back-off while the API
// server cannot take it, and waits until it is issued.
func requestNodeCertificate(ctx context.Context, client kubernetes.Interface, keyPEM []byte, nodeName string) ([]byte, error) {
	logger := klog.FromContext(ctx)
	key, err := keyutil.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key %T cannot sign", key)
	}
	subject := nodeSubject(nodeName)
	csrPEM, err := certutil.MakeCSR(key, &subject, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	usages := certificate.DefaultKubeletClientGetUsages(key)
	name, err := csrName(signer.Public(), subject, usages)
	if err != nil {
		return nil, err
	}
	var reqName string
	var reqUID types.UID
	for delay := time.Second; ; delay = min(2*delay, 30*time.Second) {
		n, uid, err := csr.RequestCertificateWithContext(ctx, client, csrPEM, name, certificatesv1.KubeAPIServerClientKubeletSignerName, nil, usages, key)
		if err == nil {
			reqName, reqUID = n, uid
			break
		}
		logger.Info("TLS bootstrap: cannot create the CertificateSigningRequest, retrying", "csr", name, "err", err, "retryIn", delay)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(delay):
		}
	}
	logger.Info("TLS bootstrap: waiting for the CertificateSigningRequest to be approved and issued", "csr", reqName)
	wctx, cancel := context.WithTimeout(ctx, bootstrapWait)
	defer cancel()
	cert, err := csr.WaitForCertificate(wctx, client, reqName, reqUID)
	if err != nil {
		return nil, fmt.Errorf("CertificateSigningRequest %s: %w", reqName, err)
	}
	return cert, nil
}

// csrName is a name that only the same key asking for the same certificate gets, so an
// attempt after a restart finds its earlier CSR instead of making another.
func csrName(pub crypto.PublicKey, subject pkix.Name, usages []certificatesv1.KeyUsage) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(struct {
		Key    []byte
		CN     string
		O      []string
		Usages []certificatesv1.KeyUsage
	}{der, subject.CommonName, subject.Organization, usages})
	if err != nil {
		return "", err
	}
	sum := sha512.Sum512_256(b)
	return "node-csr-" + base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// writeKubeconfig writes the node's kubeconfig: the bootstrap kubeconfig's server and CA,
// and the certificate and key in pemPath.
func writeKubeconfig(path string, boot *rest.Config, pemPath string) error {
	cluster := &clientcmdapi.Cluster{
		Server:                boot.Host,
		InsecureSkipTLSVerify: boot.Insecure,
		TLSServerName:         boot.ServerName,
		CertificateAuthority:  boot.CAFile,
	}
	if boot.CAFile == "" {
		cluster.CertificateAuthorityData = boot.CAData
	}
	kc := clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{"default-cluster": cluster},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"default-auth": {ClientCertificate: pemPath, ClientKey: pemPath}},
		Contexts:       map[string]*clientcmdapi.Context{"default-context": {Cluster: "default-cluster", AuthInfo: "default-auth", Namespace: "default"}},
		CurrentContext: "default-context",
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := clientcmd.WriteToFile(kc, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// rotate starts client-go's certificate manager on the client certificate of cfg (the
// newest one in --cert-dir first) and returns a config that presents the current one.
func rotate(ctx context.Context, c ClientCertConfig, cfg *rest.Config) (*rest.Config, error) {
	logger := klog.FromContext(ctx)
	store, err := certStore(logger, clientCertPrefix, c.CertDir, cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	var rotating *rest.Config
	subject := nodeSubject(c.NodeName)
	mgr, err := certificate.NewManager(&certificate.Config{
		// Renewals authenticate with the current certificate (the API server's
		// selfnodeclient approval); without one, with the bootstrap credentials.
		ClientsetFn: func(current *tls.Certificate) (kubernetes.Interface, error) {
			if current != nil {
				return c.newClient(rotating)
			}
			if c.BootstrapKubeconfigPath == "" {
				return nil, errors.New("no valid client certificate and no --bootstrap-kubeconfig to request one with")
			}
			boot, err := clientcmd.BuildConfigFromFlags("", c.BootstrapKubeconfigPath)
			if err != nil {
				return nil, fmt.Errorf("--bootstrap-kubeconfig %s: %w", c.BootstrapKubeconfigPath, err)
			}
			return c.newClient(boot)
		},
		Template:                &x509.CertificateRequest{Subject: subject},
		SignerName:              certificatesv1.KubeAPIServerClientKubeletSignerName,
		GetUsages:               certificate.DefaultKubeletClientGetUsages,
		CertificateStore:        store,
		BootstrapCertificatePEM: cfg.CertData,
		BootstrapKeyPEM:         cfg.KeyData,
		Name:                    "kubelet-client",
		Ctx:                     &ctx,
	})
	if err != nil {
		return nil, fmt.Errorf("rotateCertificates (--rotate-certificates): %w", err)
	}
	if mgr.Current() == nil {
		logger.Info("rotateCertificates: --kubeconfig has no valid client certificate to rotate; using it as it is", "kubeconfig", c.KubeconfigPath)
		return cfg, nil
	}
	rotating, err = presentCurrent(ctx, cfg, mgr)
	if err != nil {
		return nil, fmt.Errorf("rotateCertificates (--rotate-certificates): %w", err)
	}
	mgr.Start()
	logger.Info("Client certificate rotation started", "certDir", c.CertDir, "notAfter", mgr.Current().Leaf.NotAfter)
	return rotating, nil
}

// presentCurrent returns a copy of cfg without its credentials whose TLS handshakes present
// mgr's current certificate; when that changes, open connections are closed so that the
// next requests handshake again with the new one (upstream's UpdateTransport).
func presentCurrent(ctx context.Context, cfg *rest.Config, mgr certificate.Manager) (*rest.Config, error) {
	out := rest.AnonymousClientConfig(cfg)
	tlsCfg, err := rest.TLSConfigFor(out)
	if err != nil {
		return nil, err
	}
	if tlsCfg == nil {
		tlsCfg = &tls.Config{}
	}
	tlsCfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if cert := mgr.Current(); cert != nil {
			return cert, nil
		}
		return &tls.Certificate{}, nil // none (expired): the API server answers 401
	}
	dialer := connrotation.NewDialer((&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext)
	out.Transport = utilnet.SetTransportDefaults(&http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		TLSHandshakeTimeout: 10 * time.Second,
		TLSClientConfig:     tlsCfg,
		MaxIdleConnsPerHost: 25,
		DialContext:         dialer.DialContext,
	})
	out.TLSClientConfig = rest.TLSClientConfig{} // in tlsCfg now; rest refuses both
	out.Dial = nil

	logger := klog.FromContext(ctx)
	go func() {
		last := mgr.Current()
		t := time.NewTicker(rotationCheckPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			cur := mgr.Current()
			if cur == nil || cur == last {
				continue
			}
			last = cur
			logger.Info("Client certificate rotated; closing connections to use it", "notAfter", cur.Leaf.NotAfter)
			dialer.CloseAll()
		}
	}()
	return out, nil
}
