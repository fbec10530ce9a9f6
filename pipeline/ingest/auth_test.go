package ingest_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/pipeline/ingest"
)

const (
	testIssuer   = "https://idp.example.com/"
	testAudience = "sluice-ingest"
)

// testSecret is the HS256 secret of the tests (32 bytes or more, as required).
var testSecret = []byte("sluice-test-secret-0123456789abcdef")

// claimsWith returns the claims of a token that the test servers accept, valid for an hour
// from receiveTime, with edits applied (a nil value removes the claim).
func claimsWith(edits map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub":   "client-1",
		"iss":   testIssuer,
		"aud":   testAudience,
		"iat":   receiveTime.Add(-time.Minute).Unix(),
		"exp":   receiveTime.Add(time.Hour).Unix(),
		"scope": ingest.ScopeEventsWrite,
	}
	for k, v := range edits {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// sign returns a compact JWT signed with method and key, with kid in the header if set.
func sign(t testing.TB, method jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

// hsToken is an HS256 token with the test secret.
func hsToken(t testing.TB, edits map[string]any) string {
	t.Helper()
	return sign(t, jwt.SigningMethodHS256, testSecret, "", claimsWith(edits))
}

// unsignedToken is an "alg" token with an empty signature, built by hand.
func unsignedToken(t testing.TB, alg string, c jwt.MapClaims) string {
	t.Helper()
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"`+alg+`","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(mustJSON(t, c))) + "."
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

// withHS256 configures the test secret, issuer and audience.
func withHS256(c *ingest.Config) {
	c.Auth = ingest.AuthConfig{HS256Secret: testSecret, Issuer: testIssuer, Audience: testAudience}
}

// authCase is one request against an authenticating server.
type authCase struct {
	name       string
	path       string // default pathBuy
	header     map[string]string
	wantStatus int
	// wantChallenge must be contained in WWW-Authenticate (401 and 403 only).
	wantChallenge string
}

func runAuthCases(t *testing.T, s *testServer, cases []authCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			path := cmpOr(tt.path, pathBuy)
			res := s.do(t, "POST", path, ctJSON, mustJSON(t, purchase(nil)), tt.header)
			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", res.status, tt.wantStatus, res.body)
			}
			challenge := res.header.Get("WWW-Authenticate")
			switch tt.wantStatus {
			case 401:
				p := res.problem(t)
				if p.Type != ingest.ProblemUnauthorized {
					t.Errorf("problem type = %s", p.Type)
				}
			case 403:
				p := res.problem(t)
				if p.Type != ingest.ProblemForbidden {
					t.Errorf("problem type = %s", p.Type)
				}
			}
			if tt.wantChallenge != "" && !strings.Contains(challenge, tt.wantChallenge) {
				t.Errorf("WWW-Authenticate = %q, want it to contain %q", challenge, tt.wantChallenge)
			}
			if tt.wantStatus < 400 && challenge != "" {
				t.Errorf("WWW-Authenticate %q on a %d", challenge, res.status)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestAuthHS256(t *testing.T) {
	s := newTestServer(t, nil, withHS256)
	hs384 := sign(t, jwt.SigningMethodHS384, testSecret, "", claimsWith(nil))
	valid := hsToken(t, nil)
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(mustJSON(t, claimsWith(map[string]any{"sub": "admin"})))) + "." + parts[2]
	noneLib := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claimsWith(nil))
	const challenge, invalid = `Bearer realm="sluice"`, `error="invalid_token"`
	runAuthCases(t, s, []authCase{
		{name: "valid token", header: bearer(valid), wantStatus: 202},
		{name: "scheme is case-insensitive", header: map[string]string{"Authorization": "bearer  " + valid}, wantStatus: 202},
		{name: "scope string with several scopes", header: bearer(hsToken(t, map[string]any{"scope": "events:read events:write"})), wantStatus: 202},
		{name: "scp array", header: bearer(hsToken(t, map[string]any{"scope": nil, "scp": []string{"openid", "events:write"}})), wantStatus: 202},
		{name: "scp string", header: bearer(hsToken(t, map[string]any{"scope": nil, "scp": "events:write"})), wantStatus: 202},
		{name: "aud array containing the audience", header: bearer(hsToken(t, map[string]any{"aud": []string{"other", testAudience}})), wantStatus: 202},
		{name: "expired within the 30s leeway", header: bearer(hsToken(t, map[string]any{"exp": receiveTime.Add(-29 * time.Second).Unix()})), wantStatus: 202},
		{name: "expired beyond the leeway", header: bearer(hsToken(t, map[string]any{"exp": receiveTime.Add(-31 * time.Second).Unix()})), wantStatus: 401, wantChallenge: invalid},
		{name: "no exp", header: bearer(hsToken(t, map[string]any{"exp": nil})), wantStatus: 401, wantChallenge: invalid},
		{name: "not valid yet", header: bearer(hsToken(t, map[string]any{"nbf": receiveTime.Add(time.Minute).Unix()})), wantStatus: 401, wantChallenge: invalid},
		{name: "wrong issuer", header: bearer(hsToken(t, map[string]any{"iss": "https://evil.example.com/"})), wantStatus: 401, wantChallenge: invalid},
		{name: "no issuer", header: bearer(hsToken(t, map[string]any{"iss": nil})), wantStatus: 401, wantChallenge: invalid},
		{name: "wrong audience", header: bearer(hsToken(t, map[string]any{"aud": "another-api"})), wantStatus: 401, wantChallenge: invalid},
		{name: "no audience", header: bearer(hsToken(t, map[string]any{"aud": nil})), wantStatus: 401, wantChallenge: invalid},
		{name: "wrong secret", header: bearer(sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdefgh"), "", claimsWith(nil))), wantStatus: 401, wantChallenge: invalid},
		{name: "HS384 with the right secret", header: bearer(hs384), wantStatus: 401, wantChallenge: invalid},
		{name: "alg none", header: bearer(unsignedToken(t, "none", claimsWith(nil))), wantStatus: 401, wantChallenge: invalid},
		{name: "alg None", header: bearer(unsignedToken(t, "None", claimsWith(nil))), wantStatus: 401, wantChallenge: invalid},
		{name: "alg none via the library", header: bearer(noneLib), wantStatus: 401, wantChallenge: invalid},
		{name: "HS256 header without signature", header: bearer(unsignedToken(t, "HS256", claimsWith(nil))), wantStatus: 401, wantChallenge: invalid},
		{name: "tampered claims", header: bearer(tampered), wantStatus: 401, wantChallenge: invalid},
		{name: "scope of wrong type", header: bearer(hsToken(t, map[string]any{"scope": 7})), wantStatus: 401, wantChallenge: invalid},
		{name: "garbage token", header: bearer("not-a-jwt"), wantStatus: 401, wantChallenge: invalid},
		{name: "token with forbidden characters", header: bearer("a.b.c d"), wantStatus: 401, wantChallenge: invalid},
		{name: "empty bearer", header: map[string]string{"Authorization": "Bearer"}, wantStatus: 401, wantChallenge: invalid},
		{name: "no token", wantStatus: 401, wantChallenge: challenge},
		{name: "basic auth", header: map[string]string{"Authorization": "Basic dXNlcjpwdw=="}, wantStatus: 401, wantChallenge: challenge},
		{name: "token in another header", header: map[string]string{"X-Token": valid}, wantStatus: 401, wantChallenge: challenge},
	})
}

func TestAuthScopes(t *testing.T) {
	s := newTestServer(t, nil, withHS256)
	write := func(scope string) map[string]string { return bearer(hsToken(t, map[string]any{"scope": scope})) }
	const insufficient = `error="insufficient_scope"`
	runAuthCases(t, s, []authCase{
		{name: "events:write", header: write("events:write"), wantStatus: 202},
		{name: "topic scope for its topic", header: write("events:write:purchases"), wantStatus: 202},
		{name: "topic scope for another topic", header: write("events:write:clicks"), wantStatus: 403, wantChallenge: insufficient},
		{name: "topic scope is exact", header: write("events:write:purchase"), wantStatus: 403, wantChallenge: insufficient},
		{name: "topic scope prefix is not a wildcard", header: write("events:write:purchases:x"), wantStatus: 403, wantChallenge: insufficient},
		{name: "read scope cannot write", header: write("events:read"), wantStatus: 403, wantChallenge: `scope="events:write"`},
		{name: "no scope", header: bearer(hsToken(t, map[string]any{"scope": nil})), wantStatus: 403, wantChallenge: insufficient},
		{name: "scope names are case-sensitive", header: write("EVENTS:WRITE"), wantStatus: 403, wantChallenge: insufficient},
		{name: "unknown topic with a write scope", path: "/api/v1/events/nope", header: write("events:write"), wantStatus: 404},
		{name: "unknown topic with another topic's scope", path: "/api/v1/events/nope", header: write("events:write:purchases"), wantStatus: 403},
		{name: "other topic with its scope", path: "/api/v1/events/clicks", header: write("events:write:clicks"), wantStatus: 400},
	})
}

func TestPrincipalScopes(t *testing.T) {
	tests := []struct {
		name      string
		scopes    []string
		topic     string
		wantWrite bool
		wantRead  bool
	}{
		{"none", nil, "purchases", false, false},
		{"write", []string{"events:write"}, "purchases", true, false},
		{"read", []string{"events:read"}, "purchases.clean", false, true},
		{"read one topic", []string{"events:read:purchases.clean"}, "purchases.clean", false, true},
		{"read another topic", []string{"events:read:clicks.clean"}, "purchases.clean", false, false},
		{"write one topic, empty topic", []string{"events:write:"}, "", false, false},
		{"both", []string{"events:read", "events:write:purchases"}, "purchases", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ingest.Principal{Subject: "s", Scopes: tt.scopes}
			if got := p.CanWrite(tt.topic); got != tt.wantWrite {
				t.Errorf("CanWrite(%q) = %v", tt.topic, got)
			}
			if got := p.CanRead(tt.topic); got != tt.wantRead {
				t.Errorf("CanRead(%q) = %v", tt.topic, got)
			}
		})
	}
}

func TestAuthOpenAndProtectedRoutes(t *testing.T) {
	s := newTestServer(t, nil, withHS256)
	noScope := bearer(hsToken(t, map[string]any{"scope": nil}))
	tests := []struct {
		name       string
		method     string
		path       string
		header     map[string]string
		wantStatus int
	}{
		{"healthz open", "GET", "/healthz", nil, 200},
		{"readyz open", "GET", "/readyz", nil, 200},
		{"metrics open", "GET", "/metrics", nil, 200},
		{"healthz ignores a bad token", "GET", "/healthz", bearer("junk"), 200},
		{"topics needs a token", "GET", "/api/v1/topics", nil, 401},
		{"topics with any valid token", "GET", "/api/v1/topics", noScope, 200},
		{"topics case-insensitive path needs a token", "GET", "/API/V1/TOPICS", nil, 401},
		{"events case-insensitive path needs a token", "POST", "/API/V1/EVENTS/purchases", nil, 401},
		{"events trailing slash needs a token", "POST", pathBuy + "/", nil, 401},
		{"unknown route is 404, not 401", "GET", "/nope", nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := s.do(t, tt.method, tt.path, ctJSON, mustJSON(t, purchase(nil)), tt.header)
			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", res.status, tt.wantStatus, res.body)
			}
		})
	}
}

func TestAuthConfigValidation(t *testing.T) {
	schemas := newTestSchemas(t)
	tests := []struct {
		name    string
		auth    ingest.AuthConfig
		wantErr string
	}{
		{"zero is off", ingest.AuthConfig{}, ""},
		{"disabled", ingest.AuthConfig{Disabled: true}, ""},
		{"secret", ingest.AuthConfig{HS256Secret: testSecret}, ""},
		{"disabled with a secret", ingest.AuthConfig{Disabled: true, HS256Secret: testSecret}, "disabled"},
		{"disabled with an issuer", ingest.AuthConfig{Disabled: true, Issuer: "x"}, "disabled"},
		{"secret and JWKS", ingest.AuthConfig{HS256Secret: testSecret, JWKSURL: "https://idp.example.com/jwks"}, "not both"},
		{"short secret", ingest.AuthConfig{HS256Secret: []byte("short")}, "at least 32 bytes"},
		{"issuer without key", ingest.AuthConfig{Issuer: testIssuer}, "need hs256_secret or jwks_url"},
		{"audience without key", ingest.AuthConfig{Audience: testAudience}, "need hs256_secret or jwks_url"},
		{"JWKS over plain http", ingest.AuthConfig{JWKSURL: "http://idp.example.com/jwks"}, "https"},
		{"JWKS not a URL", ingest.AuthConfig{JWKSURL: "idp.example.com/jwks"}, "jwks_url"},
		{"JWKS ftp", ingest.AuthConfig{JWKSURL: "ftp://idp.example.com/jwks"}, "https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			cfg := ingest.Config{Topics: schemas.topics(), Auth: tt.auth, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
			s, err := ingest.New(cfg, &fakeProducer{})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
				off := !tt.auth.Disabled && tt.auth.HS256Secret == nil
				if got := strings.Contains(logs.String(), "authentication is OFF"); got != off {
					t.Errorf("warning logged = %v, want %v; logs:\n%s", got, off, logs.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "auth") {
				t.Fatalf("New error = %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
}

// jwksKeys are the signing keys of a test identity provider.
type jwksKeys struct {
	rsa   *rsa.PrivateKey
	ec    *ecdsa.PrivateKey
	other *rsa.PrivateKey // not published
}

func newJWKSKeys(t testing.TB) *jwksKeys {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &jwksKeys{rsa: rk, ec: ek, other: other}
}

// document renders the public keys as a JWKS: the RSA key as kid "rsa-1" and the P-256
// key as kid "ec-1".
func (k *jwksKeys) document(t testing.TB) []byte {
	t.Helper()
	enc := base64.RawURLEncoding
	pt, err := k.ec.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256",
			"n": enc.EncodeToString(k.rsa.N.Bytes()), "e": enc.EncodeToString(big.NewInt(int64(k.rsa.E)).Bytes())},
		{"kty": "EC", "kid": "ec-1", "use": "sig", "alg": "ES256", "crv": "P-256",
			"x": enc.EncodeToString(pt[1:33]), "y": enc.EncodeToString(pt[33:65])},
	}}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serveJWKS serves body at /jwks.json, counting requests.
func serveJWKS(t testing.TB, status int, body []byte) (url string, fetches *atomic.Int64) {
	t.Helper()
	fetches = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/jwks.json", fetches
}

func TestAuthJWKS(t *testing.T) {
	keys := newJWKSKeys(t)
	url, fetches := serveJWKS(t, 200, keys.document(t))
	s := newTestServer(t, nil, func(c *ingest.Config) {
		c.Auth = ingest.AuthConfig{JWKSURL: url, Issuer: testIssuer, Audience: testAudience}
	})
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	if n := fetches.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times by New, want 1", n)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&keys.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	ecDER, err := x509.MarshalPKIXPublicKey(&keys.ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	c := claimsWith(nil)
	const invalid = `error="invalid_token"`
	runAuthCases(t, s, []authCase{
		{name: "RS256 with kid", header: bearer(sign(t, jwt.SigningMethodRS256, keys.rsa, "rsa-1", c)), wantStatus: 202},
		{name: "ES256 with kid", header: bearer(sign(t, jwt.SigningMethodES256, keys.ec, "ec-1", c)), wantStatus: 202},
		{name: "RS256 without kid", header: bearer(sign(t, jwt.SigningMethodRS256, keys.rsa, "", c)), wantStatus: 202},
		{name: "ES256 without kid", header: bearer(sign(t, jwt.SigningMethodES256, keys.ec, "", c)), wantStatus: 202},
		{name: "RS256 missing scope", header: bearer(sign(t, jwt.SigningMethodRS256, keys.rsa, "rsa-1", claimsWith(map[string]any{"scope": "events:read"}))), wantStatus: 403},
		{name: "RS256 expired", header: bearer(sign(t, jwt.SigningMethodRS256, keys.rsa, "rsa-1", claimsWith(map[string]any{"exp": receiveTime.Add(-time.Hour).Unix()}))), wantStatus: 401, wantChallenge: invalid},
		{name: "RS256 wrong issuer", header: bearer(sign(t, jwt.SigningMethodRS256, keys.rsa, "rsa-1", claimsWith(map[string]any{"iss": "https://evil.example.com/"}))), wantStatus: 401, wantChallenge: invalid},
		{name: "RS256 by an unpublished key", header: bearer(sign(t, jwt.SigningMethodRS256, keys.other, "rsa-1", c)), wantStatus: 401, wantChallenge: invalid},
		{name: "RS256 by an unpublished key without kid", header: bearer(sign(t, jwt.SigningMethodRS256, keys.other, "", c)), wantStatus: 401, wantChallenge: invalid},
		{name: "RS256 with the EC key's kid", header: bearer(sign(t, jwt.SigningMethodRS256, keys.rsa, "ec-1", c)), wantStatus: 401, wantChallenge: invalid},
		{name: "ES256 with the RSA key's kid", header: bearer(sign(t, jwt.SigningMethodES256, keys.ec, "rsa-1", c)), wantStatus: 401, wantChallenge: invalid},
		{name: "HS256 keyed with the RSA public key PEM", header: bearer(sign(t, jwt.SigningMethodHS256, pubPEM, "rsa-1", c)), wantStatus: 401, wantChallenge: invalid},
		{name: "HS256 keyed with the RSA public key DER", header: bearer(sign(t, jwt.SigningMethodHS256, pubDER, "rsa-1", c)), wantStatus: 401, wantChallenge: invalid},
		{name: "HS256 keyed with the RSA modulus", header: bearer(sign(t, jwt.SigningMethodHS256, keys.rsa.N.Bytes(), "", c)), wantStatus: 401, wantChallenge: invalid},
		{name: "HS256 keyed with the EC public key DER", header: bearer(sign(t, jwt.SigningMethodHS256, ecDER, "ec-1", c)), wantStatus: 401, wantChallenge: invalid},
		{name: "RS384 by the published key", header: bearer(sign(t, jwt.SigningMethodRS384, keys.rsa, "rsa-1", c)), wantStatus: 401, wantChallenge: invalid},
		{name: "PS256 by the published key", header: bearer(sign(t, jwt.SigningMethodPS256, keys.rsa, "rsa-1", c)), wantStatus: 401, wantChallenge: invalid},
		{name: "alg none with kid", header: bearer(unsignedToken(t, "none", c)), wantStatus: 401, wantChallenge: invalid},
		{name: "unknown kid", header: bearer(sign(t, jwt.SigningMethodRS256, keys.other, "rsa-2", c)), wantStatus: 401, wantChallenge: invalid},
	})
}

func TestAuthJWKSUnusable(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		wantErr string
	}{
		{"not found", 404, `{}`, "jwks_url"},
		{"not JSON", 200, `<html>`, "jwks_url"},
		{"no keys", 200, `{"keys":[]}`, "no usable keys"},
	}
	schemas := newTestSchemas(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, _ := serveJWKS(t, tt.status, []byte(tt.body))
			cfg := ingest.Config{Topics: schemas.topics(), Auth: ingest.AuthConfig{JWKSURL: url}}
			s, err := ingest.New(cfg, &fakeProducer{})
			if err == nil {
				_ = s.Shutdown(context.Background())
				t.Fatal("New accepted an unusable JWKS")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// FuzzBearerToken sends arbitrary Authorization headers to a server that checks HS256
// tokens: the answer is never a 5xx, and every refusal is a 401 problem with a challenge.
func FuzzBearerToken(f *testing.F) {
	valid := hsToken(f, nil)
	parts := strings.Split(valid, ".")
	seeds := []string{
		"", "Bearer", "Bearer ", "bearer " + valid, "Bearer " + valid, "Bearer  " + valid + "  ", "Bearer\t" + valid,
		"Basic dXNlcjpwdw==", "Bearer " + parts[0], "Bearer " + parts[0] + "." + parts[1], "Bearer " + parts[0] + "." + parts[1] + ".",
		"Bearer " + valid + "." + parts[2], "Bearer ..", "Bearer " + strings.Repeat("a", 20000),
		"Bearer " + unsignedToken(f, "none", claimsWith(nil)), "Bearer " + hsToken(f, map[string]any{"scope": []any{1, 2}}),
		"Bearer " + hsToken(f, map[string]any{"exp": "tomorrow"}), "Bearer " + hsToken(f, map[string]any{"aud": map[string]any{"x": 1}}),
		"Bearer eyJhbGciOiJIUzI1NiJ9.e30.", "Bearer eyJ9.eyJ9.eyJ9", "Bearer \xff\xfe", "Bearer a\x00b",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	s := newTestServer(f, &fakeProducer{discard: true}, withHS256)
	h := s.App().Handler()
	body := []byte(mustJSON(f, purchase(nil)))
	f.Fuzz(func(t *testing.T, authz string) {
		req := &fasthttp.Request{}
		req.Header.SetMethod("POST")
		req.SetRequestURI(pathBuy)
		req.Header.SetContentType(ctJSON)
		req.Header.Set("Authorization", authz)
		req.SetBody(body)
		res := handle(h, req)
		switch status := res.StatusCode(); {
		case status >= 500:
			t.Fatalf("status %d for %q: %s", status, authz, res.Body())
		case status == 202:
		case status == 401 || status == 403:
			if string(res.Header.ContentType()) != ingest.MediaTypeProblem || len(res.Header.Peek("WWW-Authenticate")) == 0 {
				t.Fatalf("status %d without problem or challenge: %q %q", status, res.Header.ContentType(), res.Header.Peek("WWW-Authenticate"))
			}
		default:
			t.Fatalf("status %d for %q: %s", status, authz, res.Body())
		}
	})
}

func TestAuthorize(t *testing.T) {
	// Routes outside the middleware chain (the WebSocket handshakes) call Authorize the
	// way ws.go does: the topic scope for ingest, events:read for a stream.
	probe := func(s *testServer) {
		s.App().Get("/probe/ingest/:topic", func(c *fiber.Ctx) error {
			if err := s.Authorize(c, ingest.ScopeEventsWrite+":"+c.Params("topic")); err != nil {
				return err
			}
			return c.SendString("ok")
		})
		s.App().Get("/probe/stream/:topic", func(c *fiber.Ctx) error {
			if err := s.Authorize(c, ingest.ScopeEventsRead); err != nil {
				return err
			}
			return c.SendString("ok")
		})
	}
	on := newTestServer(t, nil, withHS256)
	probe(on)
	off := newTestServer(t, nil, nil)
	probe(off)
	scoped := func(scope string) map[string]string { return bearer(hsToken(t, map[string]any{"scope": scope})) }
	tests := []struct {
		name          string
		s             *testServer
		path          string
		header        map[string]string
		wantStatus    int
		wantChallenge string
	}{
		{"ingest with events:write", on, "/probe/ingest/purchases", scoped("events:write"), 200, ""},
		{"ingest with its topic scope", on, "/probe/ingest/purchases", scoped("events:write:purchases"), 200, ""},
		{"ingest with another topic's scope", on, "/probe/ingest/purchases", scoped("events:write:clicks"), 403, `scope="events:write"`},
		{"ingest with events:read", on, "/probe/ingest/purchases", scoped("events:read"), 403, "insufficient_scope"},
		{"stream with events:read", on, "/probe/stream/purchases.clean", scoped("events:read"), 200, ""},
		{"stream with its topic scope", on, "/probe/stream/purchases.clean", scoped("events:read:purchases.clean"), 200, ""},
		{"stream with another topic's scope", on, "/probe/stream/purchases.clean", scoped("events:read:clicks.clean"), 403, `scope="events:read"`},
		{"stream with events:write", on, "/probe/stream/purchases.clean", scoped("events:write"), 403, "insufficient_scope"},
		{"no token", on, "/probe/stream/purchases.clean", nil, 401, `Bearer realm="sluice"`},
		{"bad token", on, "/probe/ingest/purchases", bearer("x.y.z"), 401, `error="invalid_token"`},
		{"auth off", off, "/probe/ingest/purchases", nil, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.s.do(t, "GET", tt.path, "", "", tt.header)
			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", res.status, tt.wantStatus, res.body)
			}
			if tt.wantStatus != 200 {
				res.problem(t)
			}
			if got := res.header.Get("WWW-Authenticate"); !strings.Contains(got, tt.wantChallenge) {
				t.Errorf("WWW-Authenticate = %q, want it to contain %q", got, tt.wantChallenge)
			}
		})
	}
}
