package podcertificate

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// generateKey makes a fresh private key of one of the key types a
// PodCertificateProjection may ask for (the API server admits no others).
func generateKey(keyType string) (crypto.Signer, error) {
	var (
		priv crypto.Signer
		err  error
		what string
	)
	switch keyType {
	case "RSA3072":
		what = "RSA 3072"
		priv, err = rsa.GenerateKey(rand.Reader, 3072)
	case "RSA4096":
		what = "RSA 4096"
		priv, err = rsa.GenerateKey(rand.Reader, 4096)
	case "ECDSAP256":
		what = "ECDSA P256"
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ECDSAP384":
		what = "ECDSA P384"
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ECDSAP521":
		what = "ECDSA P521"
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "ED25519":
		what = "Ed25519"
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("unknown key type %q", keyType)
	}
	if err != nil {
		return nil, fmt.Errorf("while generating %s key: %w", what, err)
	}
	return priv, nil
}

// generateKeyAndProof makes the key and the request's proof of possession: an empty
// PKCS#10 request signed with the key (spec.stubPKCS10Request). The API server checks
// its signature; signers only take the public key from it.
func generateKeyAndProof(keyType string) (crypto.Signer, []byte, error) {
	priv, err := generateKey(keyType)
	if err != nil {
		return nil, nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, priv)
	if err != nil {
		return nil, nil, fmt.Errorf("while generating stub PKCS#10 request: %w", err)
	}
	return priv, csr, nil
}

// pemEncodeKey encodes key as the PKCS#8 "PRIVATE KEY" block that is projected into
// the pod (and that leads the credential bundle).
func pemEncodeKey(key crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("while marshaling key to PKCS#8: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// cleanCertificateChain re-encodes every PEM block of a signer's chain as a bare
// CERTIFICATE block, dropping text between blocks and block headers, so that nothing
// but certificates reaches the pod.
func cleanCertificateChain(in []byte) []byte {
	var out bytes.Buffer
	for rest := in; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out.Bytes()
		}
		out.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.Bytes}))
	}
}
