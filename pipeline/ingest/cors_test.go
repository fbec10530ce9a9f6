package ingest_test

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/ingest"
)

func preflight(origin, method string) map[string]string {
	return map[string]string{
		"Origin":                         origin,
		"Access-Control-Request-Method":  method,
		"Access-Control-Request-Headers": "authorization,content-type",
	}
}

func TestCORS(t *testing.T) {
	s := newTestServer(t, nil, func(c *ingest.Config) {
		withHS256(c)
		c.CORS = ingest.CORSConfig{
			AllowOrigins:     []string{"https://app.example.com", "http://localhost:3000", "https://*.example.org"},
			AllowCredentials: true,
		}
	})
	tok := bearer(hsToken(t, nil))
	tok["Origin"] = "https://app.example.com"
	tests := []struct {
		name        string
		method      string
		header      map[string]string
		wantStatus  int
		wantOrigin  string // Access-Control-Allow-Origin; "" = absent
		wantPreflit bool   // preflight headers expected
	}{
		{"preflight from an allowed origin", "OPTIONS", preflight("https://app.example.com", "POST"), 204, "https://app.example.com", true},
		{"preflight from an allowed origin with port", "OPTIONS", preflight("http://localhost:3000", "POST"), 204, "http://localhost:3000", true},
		{"preflight from an allowed subdomain", "OPTIONS", preflight("https://shop.example.org", "POST"), 204, "https://shop.example.org", true},
		{"preflight origin case-insensitive", "OPTIONS", preflight("https://APP.example.com", "POST"), 204, "https://app.example.com", true},
		{"preflight from a disallowed origin", "OPTIONS", preflight("https://evil.example.net", "POST"), 204, "", false},
		{"preflight from a look-alike origin", "OPTIONS", preflight("https://app.example.com.evil.net", "POST"), 204, "", false},
		{"preflight with another scheme", "OPTIONS", preflight("http://app.example.com", "POST"), 204, "", false},
		{"preflight from another port", "OPTIONS", preflight("http://localhost:3001", "POST"), 204, "", false},
		{"preflight from the bare wildcard domain", "OPTIONS", preflight("https://example.org", "POST"), 204, "", false},
		{"request with a token from an allowed origin", "POST", tok, 202, "https://app.example.com", false},
		{"401 from an allowed origin is readable", "POST", map[string]string{"Origin": "https://app.example.com"}, 401, "https://app.example.com", false},
		{"request from a disallowed origin", "POST", map[string]string{"Origin": "https://evil.example.net"}, 401, "", false},
		{"OPTIONS without preflight headers", "OPTIONS", map[string]string{"Origin": "https://app.example.com"}, 405, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := s.do(t, tt.method, pathBuy, ctJSON, mustJSON(t, purchase(nil)), tt.header)
			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", res.status, tt.wantStatus, res.body)
			}
			h := res.header
			if got := h.Get("Access-Control-Allow-Origin"); got != tt.wantOrigin {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tt.wantOrigin)
			}
			if got, want := h.Get("Access-Control-Allow-Credentials"), map[bool]string{true: "true"}[tt.wantOrigin != ""]; got != want {
				t.Errorf("Access-Control-Allow-Credentials = %q, want %q", got, want)
			}
			if !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
				t.Errorf("Vary = %q lacks Origin", h.Values("Vary"))
			}
			if !tt.wantPreflit {
				if tt.wantOrigin != "" && !strings.Contains(h.Get("Access-Control-Expose-Headers"), ingest.HeaderRateLimitRemaining) {
					t.Errorf("Access-Control-Expose-Headers = %q", h.Get("Access-Control-Expose-Headers"))
				}
				return
			}
			if got := h.Get("Access-Control-Allow-Methods"); !strings.Contains(got, "POST") || strings.Contains(got, "DELETE") {
				t.Errorf("Access-Control-Allow-Methods = %q", got)
			}
			if got := h.Get("Access-Control-Allow-Headers"); !strings.Contains(strings.ToLower(got), "authorization") {
				t.Errorf("Access-Control-Allow-Headers = %q", got)
			}
			if got := h.Get("Access-Control-Max-Age"); got != "600" {
				t.Errorf("Access-Control-Max-Age = %q, want 600", got)
			}
		})
	}
}

func TestCORSWildcardWithoutCredentials(t *testing.T) {
	s := newTestServer(t, nil, func(c *ingest.Config) { c.CORS = ingest.CORSConfig{AllowOrigins: []string{"*"}} })
	res := s.do(t, "OPTIONS", pathBuy, "", "", preflight("https://anyone.example", "POST"))
	if res.status != 204 || res.header.Get("Access-Control-Allow-Origin") != "*" || res.header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("status %d, headers %v", res.status, res.header)
	}
}

func TestCORSOff(t *testing.T) {
	s := newTestServer(t, nil, nil)
	res := s.do(t, "OPTIONS", pathBuy, "", "", preflight("https://app.example.com", "POST"))
	if res.status != 405 || res.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("status %d, Access-Control-Allow-Origin %q", res.status, res.header.Get("Access-Control-Allow-Origin"))
	}
	res = s.do(t, "POST", pathBuy, ctJSON, mustJSON(t, purchase(nil)), map[string]string{"Origin": "https://app.example.com"})
	if res.status != 202 || res.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("status %d, Access-Control-Allow-Origin %q", res.status, res.header.Get("Access-Control-Allow-Origin"))
	}
}

func TestCORSConfigValidation(t *testing.T) {
	schemas := newTestSchemas(t)
	tests := []struct {
		name    string
		cors    ingest.CORSConfig
		wantErr string
	}{
		{"zero is off", ingest.CORSConfig{}, ""},
		{"origins", ingest.CORSConfig{AllowOrigins: []string{"https://a.example.com", "http://localhost:8080/"}}, ""},
		{"wildcard", ingest.CORSConfig{AllowOrigins: []string{"*"}}, ""},
		{"subdomains with credentials", ingest.CORSConfig{AllowOrigins: []string{"https://*.example.com"}, AllowCredentials: true}, ""},
		{"wildcard with credentials", ingest.CORSConfig{AllowOrigins: []string{"*"}, AllowCredentials: true}, "allow_credentials"},
		{"wildcard among others", ingest.CORSConfig{AllowOrigins: []string{"https://a.example.com", "*"}}, "only origin"},
		{"credentials without origins", ingest.CORSConfig{AllowCredentials: true}, "allow_credentials"},
		{"no scheme", ingest.CORSConfig{AllowOrigins: []string{"app.example.com"}}, "allow_origins"},
		{"other scheme", ingest.CORSConfig{AllowOrigins: []string{"ftp://app.example.com"}}, "allow_origins"},
		{"path", ingest.CORSConfig{AllowOrigins: []string{"https://app.example.com/app"}}, "allow_origins"},
		{"query", ingest.CORSConfig{AllowOrigins: []string{"https://app.example.com?x=1"}}, "allow_origins"},
		{"user", ingest.CORSConfig{AllowOrigins: []string{"https://u@app.example.com"}}, "allow_origins"},
		{"wildcard scheme host", ingest.CORSConfig{AllowOrigins: []string{"https://*"}}, "allow_origins"},
		{"wildcard inside host", ingest.CORSConfig{AllowOrigins: []string{"https://a.*.example.com"}}, "allow_origins"},
		{"empty origin", ingest.CORSConfig{AllowOrigins: []string{""}}, "allow_origins"},
		{"negative max age", ingest.CORSConfig{AllowOrigins: []string{"https://a.example.com"}, MaxAge: -1}, "max_age"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ingest.New(ingest.Config{Topics: schemas.topics(), CORS: tt.cors}, &fakeProducer{})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), "cors: ") || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New error = %v, want one naming cors %s", err, tt.wantErr)
			}
		})
	}
}
