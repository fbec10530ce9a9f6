package ingest_test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// /docs and its embedded assets are served with the Content-Security-Policy; the page
// loads only same-origin scripts, and the document declares the bearer scheme that
// try-it-out's Authorize dialog fills.
func TestDocsAssetsAndCSP(t *testing.T) {
	s := newTestServer(t, nil, nil)
	for path, ctype := range map[string]string{
		"/docs":                      "text/html",
		"/docs/swagger-ui-bundle.js": "text/javascript",
		"/docs/swagger-ui.css":       "text/css",
		"/docs/init.js":              "text/javascript",
	} {
		res := s.do(t, "GET", path, "", "", nil)
		if res.status != 200 || !strings.HasPrefix(res.header.Get("Content-Type"), ctype) {
			t.Fatalf("GET %s: %d %q", path, res.status, res.header.Get("Content-Type"))
		}
		csp := res.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe-eval") {
			t.Fatalf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
	page := string(s.do(t, "GET", "/docs", "", "", nil).body)
	if strings.Contains(page, "<script>") || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Fatalf("/docs has an inline script or an external URL:\n%s", page)
	}
	for _, p := range []string{"/docs/nope.js", "/docs/..%2fopenapi.go", "/docs/VERSION"} {
		if res := s.do(t, "GET", p, "", "", nil); res.status != 404 {
			t.Fatalf("GET %s: %d, want 404", p, res.status)
		}
	}
	var doc struct {
		Components struct {
			SecuritySchemes map[string]map[string]string `json:"securitySchemes"`
		} `json:"components"`
		Paths map[string]map[string]struct {
			Security []map[string][]string `json:"security"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(s.do(t, "GET", "/openapi.json", "", "", nil).body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Components.SecuritySchemes["bearerAuth"]["scheme"] != "bearer" {
		t.Fatalf("securitySchemes: %v", doc.Components.SecuritySchemes)
	}
	n := 0
	for path, ops := range doc.Paths {
		if strings.HasPrefix(path, "/api/v1/events/") {
			if len(ops["post"].Security) != 1 {
				t.Fatalf("%s: security %v", path, ops["post"].Security)
			}
			n++
		}
	}
	if n == 0 {
		t.Fatal("no events operation in the document")
	}
}

// The vendored browser assets are the bytes scripts/ui/vendor.sh fetched and pinned in
// scripts/ui/SHA256SUMS (nobody edited them by hand).
func TestVendoredAssetsMatchSums(t *testing.T) {
	sums, err := os.ReadFile(filepath.Join("..", "..", "scripts", "ui", "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.SplitSeq(strings.TrimSpace(string(sums)), "\n") {
		want, path, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", line)
		}
		b, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(path)))
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%x", sha256.Sum256(b)); got != want {
			t.Errorf("%s: sha256 %s, want %s (run scripts/ui/vendor.sh)", path, got, want)
		}
		n++
	}
	if n < 3 {
		t.Fatalf("SHA256SUMS lists %d files", n)
	}
}
