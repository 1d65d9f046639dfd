package podcertificate

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

func TestGenerateKeyAndProof(t *testing.T) {
	tests := []struct {
		keyType string
		check   func(pub crypto.PublicKey) bool // the key is of keyType
		wantErr string
	}{
		{keyType: "RSA3072", check: rsaBits(3072)},
		{keyType: "RSA4096", check: rsaBits(4096)},
		{keyType: "ECDSAP256", check: curve(elliptic.P256())},
		{keyType: "ECDSAP384", check: curve(elliptic.P384())},
		{keyType: "ECDSAP521", check: curve(elliptic.P521())},
		{keyType: "ED25519", check: func(pub crypto.PublicKey) bool { _, ok := pub.(ed25519.PublicKey); return ok }},
		{keyType: "DSA", wantErr: `unknown key type "DSA"`},
		{keyType: "", wantErr: `unknown key type ""`},
	}
	for _, tc := range tests {
		t.Run(tc.keyType, func(t *testing.T) {
			priv, proof, err := generateKeyAndProof(tc.keyType)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("got error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			csr := verifyProof(t, proof)
			if !tc.check(csr.PublicKey) {
				t.Errorf("public key %T is not a %s key", csr.PublicKey, tc.keyType)
			}
			keyPEM, err := pemEncodeKey(priv)
			if err != nil {
				t.Fatal(err)
			}
			if !parseKeyPEM(t, keyPEM).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(csr.PublicKey) {
				t.Error("PEM key does not match the proof's public key")
			}
		})
	}
}

// verifyProof checks a stub PKCS#10 request as the API server does: parseable, empty,
// self-signed by the key it carries.
func verifyProof(t *testing.T, der []byte) *x509.CertificateRequest {
	t.Helper()
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatalf("stub PKCS#10 request does not parse: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatalf("proof of possession does not verify: %v", err)
	}
	if csr.Subject.String() != "" || len(csr.DNSNames)+len(csr.URIs)+len(csr.Extensions) != 0 {
		t.Errorf("stub PKCS#10 request is not empty: %+v", csr)
	}
	return csr
}

// parseKeyPEM checks the key is exactly one PKCS#8 "PRIVATE KEY" block.
func parseKeyPEM(t *testing.T, keyPEM []byte) crypto.Signer {
	t.Helper()
	b, rest := pem.Decode(keyPEM)
	if b == nil || b.Type != "PRIVATE KEY" || len(b.Headers) != 0 || len(rest) != 0 {
		t.Fatalf("key is not a single PRIVATE KEY block: %q", keyPEM)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatalf("key is not PKCS#8: %v", err)
	}
	return k.(crypto.Signer)
}

func rsaBits(n int) func(crypto.PublicKey) bool {
	return func(pub crypto.PublicKey) bool {
		k, ok := pub.(*rsa.PublicKey)
		return ok && k.N.BitLen() == n
	}
}

func curve(c elliptic.Curve) func(crypto.PublicKey) bool {
	return func(pub crypto.PublicKey) bool {
		k, ok := pub.(*ecdsa.PublicKey)
		return ok && k.Curve == c
	}
}

func TestCleanCertificateChain(t *testing.T) {
	block := func(typ string, body []byte, headers map[string]string) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Headers: headers, Bytes: body}))
	}
	leaf, inter := []byte("leaf-der"), []byte("intermediate-der")
	want := block("CERTIFICATE", leaf, nil) + block("CERTIFICATE", inter, nil)
	tests := []struct {
		name, in, want string
	}{
		{"clean already", want, want},
		{"text between and around blocks", "leading\n" + block("CERTIFICATE", leaf, nil) + "middle\n" + block("CERTIFICATE", inter, nil) + "trailing\n", want},
		{"headers dropped", block("CERTIFICATE", leaf, map[string]string{"Note": "x"}) + block("CERTIFICATE", inter, nil), want},
		{"other block types become CERTIFICATE", block("TRUSTED CERTIFICATE", leaf, nil) + block("CERTIFICATE", inter, nil), want},
		{"empty", "", ""},
		{"no PEM at all", "garbage", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(cleanCertificateChain([]byte(tc.in))); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
