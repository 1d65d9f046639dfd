package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// errNoServingCert fails a handshake while serverTLSBootstrap has no certificate yet
// (upstream's message).
var errNoServingCert = errors.New("no serving certificate available for the kubelet")

// tlsConfig builds the serving TLS config: the serving certificate, the minimum version and
// cipher suites, and client certificates verified against the client CA when one is set
// (a client may also come without one, to use a token or be anonymous).
func tlsConfig(cfg Config) (*tls.Config, error) {
	k := cfg.Kubelet
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if src := cfg.ServingCertificate; src != nil {
		c.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if cert := src.Current(); cert != nil {
				return cert, nil
			}
			return nil, errNoServingCert
		}
	} else {
		cert, err := servingCert(cfg)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	if k.TLSMinVersion != "" {
		v, ok := tlsVersions[k.TLSMinVersion]
		if !ok {
			return nil, fmt.Errorf("tlsMinVersion (--tls-min-version): unknown version %q", k.TLSMinVersion)
		}
		c.MinVersion = v
	}
	for _, name := range k.TLSCipherSuites {
		id, ok := cipherSuite(name)
		if !ok {
			return nil, fmt.Errorf("tlsCipherSuites (--tls-cipher-suites): unknown cipher suite %q", name)
		}
		c.CipherSuites = append(c.CipherSuites, id)
	}
	if file := k.Authentication.X509.ClientCAFile; file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("authentication.x509.clientCAFile (--client-ca-file): %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("authentication.x509.clientCAFile (--client-ca-file) %s: no PEM certificate found", file)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return c, nil
}

var tlsVersions = map[string]uint16{
	"VersionTLS10": tls.VersionTLS10, "VersionTLS11": tls.VersionTLS11,
	"VersionTLS12": tls.VersionTLS12, "VersionTLS13": tls.VersionTLS13,
}

func cipherSuite(name string) (uint16, bool) {
	for _, s := range slices.Concat(tls.CipherSuites(), tls.InsecureCipherSuites()) {
		if s.Name == name {
			return s.ID, true
		}
	}
	return 0, false
}

// servingCert loads tlsCertFile/tlsPrivateKeyFile, or else, as upstream, a self-signed
// certificate for the node's names and addresses kept in CertDir (made on first start).
func servingCert(cfg Config) (tls.Certificate, error) {
	k := cfg.Kubelet
	if k.TLSCertFile != "" || k.TLSPrivateKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(k.TLSCertFile, k.TLSPrivateKeyFile)
		if err != nil {
			return cert, fmt.Errorf("tlsCertFile/tlsPrivateKeyFile (--tls-cert-file/--tls-private-key-file): %w", err)
		}
		return cert, nil
	}
	crtFile, keyFile := filepath.Join(cfg.CertDir, "kubelet.crt"), filepath.Join(cfg.CertDir, "kubelet.key")
	if cert, err := tls.LoadX509KeyPair(crtFile, keyFile); err == nil {
		return cert, nil
	}
	crtPEM, keyPEM, err := selfSigned(cfg)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.MkdirAll(cfg.CertDir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("serving certificate: %w", err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, fmt.Errorf("serving certificate: %w", err)
	}
	if err := os.WriteFile(crtFile, crtPEM, 0o644); err != nil {
		return tls.Certificate{}, fmt.Errorf("serving certificate: %w", err)
	}
	return tls.X509KeyPair(crtPEM, keyPEM)
}

func selfSigned(cfg Config) (crtPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	host := cfg.Hostname
	if host == "" {
		host = cfg.NodeName
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("%s@%d", host, now.Unix())},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              slices.Compact([]string{host, cfg.NodeName}),
	}
	for _, ip := range cfg.NodeIPs {
		if p := net.ParseIP(ip); p != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, p)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}
