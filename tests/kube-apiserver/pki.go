package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki holds the files the API server is started with and the admin credential of the kubeconfig. All
// of it is generated afresh at every start and lives only as long as the process.
type pki struct {
	caFile       string // CA of the serving certificate and of client certificates
	servingCert  string
	servingKey   string
	saPublicKey  string // verifies ServiceAccount tokens
	saSigningKey string // signs ServiceAccount tokens
	caPEM        []byte
	adminCertPEM []byte // client certificate of the admin (group system:masters)
	adminKeyPEM  []byte
}

const (
	adminUser = "twilio-video-operator-admin"
	// system:masters is bound to cluster-admin by the bootstrap RBAC policy and bypasses authorization.
	adminGroup = "system:masters"
)

func writePKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &pki{
		caFile:       filepath.Join(dir, "ca.crt"),
		servingCert:  filepath.Join(dir, "serving.crt"),
		servingKey:   filepath.Join(dir, "serving.key"),
		saPublicKey:  filepath.Join(dir, "service-account.pub"),
		saSigningKey: filepath.Join(dir, "service-account.key"),
	}

	caKey, err := newKey()
	if err != nil {
		return nil, err
	}
	caTemplate := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "twilio-video-operator test CA"},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caCert, caDER, err := sign(caTemplate, caKey, nil, nil)
	if err != nil {
		return nil, err
	}
	p.caPEM = certPEM(caDER)

	servingKey, err := newKey()
	if err != nil {
		return nil, err
	}
	_, servingDER, err := sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:    []string{"localhost"},
	}, servingKey, caCert, caKey)
	if err != nil {
		return nil, err
	}

	adminKey, err := newKey()
	if err != nil {
		return nil, err
	}
	_, adminDER, err := sign(&x509.Certificate{
		// The API server reads the user name from CN and the groups from O.
		Subject:     pkix.Name{CommonName: adminUser, Organization: []string{adminGroup}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, adminKey, caCert, caKey)
	if err != nil {
		return nil, err
	}
	p.adminCertPEM = certPEM(adminDER)
	if p.adminKeyPEM, err = keyPEM(adminKey); err != nil {
		return nil, err
	}

	saKey, err := newKey()
	if err != nil {
		return nil, err
	}
	saPublicDER, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return nil, err
	}

	servingKeyPEM, err := keyPEM(servingKey)
	if err != nil {
		return nil, err
	}
	saKeyPEM, err := keyPEM(saKey)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{
		p.caFile:       p.caPEM,
		p.servingCert:  certPEM(servingDER),
		p.servingKey:   servingKeyPEM,
		p.saPublicKey:  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPublicDER}),
		p.saSigningKey: saKeyPEM,
	}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// newKey makes an ECDSA P-256 key: valid for TLS and for ServiceAccount tokens (ES256), and generated
// in microseconds where an RSA key would take a noticeable part of the start-up.
func newKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// sign completes template (serial number, validity) and signs it with parentKey, or self-signs it
// when parent is nil.
func sign(template *x509.Certificate, key *ecdsa.PrivateKey, parent *x509.Certificate,
	parentKey crypto.Signer) (*x509.Certificate, []byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	template.SerialNumber = serial
	// A minute of slack for clocks; a day is longer than any test run.
	template.NotBefore = time.Now().Add(-time.Minute)
	template.NotAfter = time.Now().Add(24 * time.Hour)
	if parent == nil {
		parent, parentKey = template, key
	}
	der, err := x509.CreateCertificate(rand.Reader, template, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign %q: %w", template.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	return cert, der, err
}

func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func keyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}
