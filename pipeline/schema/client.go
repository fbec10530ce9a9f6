package schema

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sluicehq/sluice/pipeline/config"
)

// DefaultRegistryTimeout bounds one registry request.
const DefaultRegistryTimeout = 10 * time.Second

// NewClient builds the franz-go registry client for url from the --registry-* flags:
// basic auth or a bearer token, a CA file, a client certificate for mutual TLS. It is the
// one place every command builds its registry client, so all of them authenticate alike.
// Bad settings are an error naming the flag (config.Registry.Validate); unreadable files
// name the file.
func NewClient(url string, rc config.Registry) (*sr.Client, error) {
	if err := rc.Validate(url); err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	opts := []sr.ClientOpt{sr.URLs(url), sr.UserAgent("sluice")}
	switch {
	case rc.Username != "":
		opts = append(opts, sr.BasicAuth(rc.Username, rc.Password))
	case rc.BearerToken != "":
		opts = append(opts, sr.BearerToken(rc.BearerToken))
	}
	tc, err := registryTLS(rc)
	if err != nil {
		return nil, err
	}
	httpcl := &http.Client{Timeout: DefaultRegistryTimeout}
	if tc != nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tc
		httpcl.Transport = tr
	}
	opts = append(opts, sr.HTTPClient(httpcl))
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("schema registry client: %w", err)
	}
	return cl, nil
}

// registryTLS returns the TLS config of the --registry-tls-* flags, nil if none is set
// (an https:// URL then uses the system roots).
func registryTLS(rc config.Registry) (*tls.Config, error) {
	if rc.TLSCA == "" && rc.TLSCert == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if rc.TLSCA != "" {
		pem, err := os.ReadFile(rc.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("schema registry: --registry-tls-ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("schema registry: --registry-tls-ca: no PEM certificate in %s", rc.TLSCA)
		}
	}
	if rc.TLSCert != "" {
		pair, err := tls.LoadX509KeyPair(rc.TLSCert, rc.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("schema registry: --registry-tls-cert/--registry-tls-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}
