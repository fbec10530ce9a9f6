package service_test

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/service"
	"github.com/sluicehq/sluice/pipeline/sink"
)

const testToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// newQueryWarehouse is an in-memory DuckDB warehouse with one table T of two rows.
func newQueryWarehouse(t *testing.T) *sink.SQLWarehouse {
	t.Helper()
	w, err := sink.OpenDuckDB("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	for _, q := range []string{"CREATE TABLE T (A INTEGER)", "INSERT INTO T VALUES (1), (2)"} {
		rows, err := w.Query(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		_ = rows.Close()
	}
	return w
}

// queryRequest is a request `sluice query` would send; edit modifies it.
func queryRequest(sql string, edit func(r *http.Request)) *http.Request {
	body, _ := json.Marshal(service.QueryRequest{SQL: sql})
	r := httptest.NewRequest(http.MethodPost, "/v1/query", strings.NewReader(string(body)))
	r.RemoteAddr = "127.0.0.1:50000"
	r.Host = "127.0.0.1:8082"
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+testToken)
	if edit != nil {
		edit(r)
	}
	return r
}

// Issue 15, defect 2: the query endpoint answered a text/plain POST with a foreign Origin
// (any web page can send one), a foreign Host (DNS rebinding) and no credentials. Now it
// answers only a loopback caller with a loopback Host, no Origin, the process's token and
// application/json.
func TestQueryHandlerRefusesForeignCallers(t *testing.T) {
	t.Parallel()
	h := service.QueryHandler(newQueryWarehouse(t), testToken)
	header := func(k, v string) func(*http.Request) { return func(r *http.Request) { r.Header.Set(k, v) } }
	host := func(v string) func(*http.Request) { return func(r *http.Request) { r.Host = v } }
	tests := []struct {
		name   string
		edit   func(*http.Request)
		status int
	}{
		{name: "sluice query", status: http.StatusOK},
		{name: "charset parameter", edit: header("Content-Type", "application/json; charset=utf-8"), status: http.StatusOK},
		{name: "lower-case scheme", edit: header("Authorization", "bearer "+testToken), status: http.StatusOK},
		{name: "Host localhost", edit: host("localhost"), status: http.StatusOK},
		{name: "Host LOCALHOST:8082", edit: host("LOCALHOST:8082"), status: http.StatusOK},
		{name: "Host 127.0.0.2", edit: host("127.0.0.2:8082"), status: http.StatusOK},
		{name: "Host [::1]:8082", edit: host("[::1]:8082"), status: http.StatusOK},
		{name: "Host [::1]", edit: host("[::1]"), status: http.StatusOK},

		{name: "remote caller", edit: func(r *http.Request) { r.RemoteAddr = "192.0.2.1:50000" }, status: http.StatusForbidden},
		{name: "Host a rebound name", edit: host("attacker.example:8082"), status: http.StatusForbidden},
		{name: "Host a name without port", edit: host("attacker.example"), status: http.StatusForbidden},
		{name: "Host localhost subdomain", edit: host("localhost.attacker.example"), status: http.StatusForbidden},
		{name: "Host a loopback-looking name", edit: host("127.0.0.1.nip.io"), status: http.StatusForbidden},
		{name: "Host a LAN address", edit: host("192.168.1.2:8082"), status: http.StatusForbidden},
		{name: "Host 0.0.0.0", edit: host("0.0.0.0:8082"), status: http.StatusForbidden},
		{name: "Host empty", edit: host(""), status: http.StatusForbidden},
		{name: "Origin of a web page", edit: header("Origin", "https://attacker.example"), status: http.StatusForbidden},
		{name: "Origin null", edit: header("Origin", "null"), status: http.StatusForbidden},
		{name: "Origin of loopback", edit: header("Origin", "http://127.0.0.1:8082"), status: http.StatusForbidden},
		{name: "no token", edit: func(r *http.Request) { r.Header.Del("Authorization") }, status: http.StatusUnauthorized},
		{name: "wrong token", edit: header("Authorization", "Bearer "+strings.Repeat("0", 64)), status: http.StatusUnauthorized},
		{name: "token prefix", edit: header("Authorization", "Bearer "+testToken[:32]), status: http.StatusUnauthorized},
		{name: "empty token", edit: header("Authorization", "Bearer "), status: http.StatusUnauthorized},
		{name: "Basic scheme", edit: header("Authorization", "Basic "+testToken), status: http.StatusUnauthorized},
		{name: "text/plain", edit: header("Content-Type", "text/plain"), status: http.StatusUnsupportedMediaType},
		{name: "form", edit: header("Content-Type", "application/x-www-form-urlencoded"), status: http.StatusUnsupportedMediaType},
		{name: "no Content-Type", edit: func(r *http.Request) { r.Header.Del("Content-Type") }, status: http.StatusUnsupportedMediaType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, queryRequest("select count(*) as n from T", tc.edit))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status == http.StatusOK {
				if !strings.Contains(rec.Body.String(), `"rows":[[2]]`) {
					t.Fatalf("body %s", rec.Body)
				}
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tc.status == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

// The reproduction, as a web page would send it: refused before any SQL runs.
func TestQueryHandlerRefusesTheCrossSiteCopy(t *testing.T) {
	t.Parallel()
	owned := filepath.Join(t.TempDir(), "owned.txt")
	h := service.QueryHandler(newQueryWarehouse(t), testToken)
	r := queryRequest("COPY (select 'echo owned') TO '"+owned+"'", func(r *http.Request) {
		r.Header.Set("Content-Type", "text/plain")
		r.Header.Set("Origin", "https://attacker.example")
		r.Header.Del("Authorization")
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusForbidden {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if _, err := os.Stat(owned); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the request wrote %s: %v", owned, err)
	}
}

// With every header right, SQL that writes or reaches a file is still a 400 problem and
// never runs.
func TestQueryHandlerRefusesWhatIsNotARead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	owned := filepath.Join(dir, "owned.txt")
	h := service.QueryHandler(newQueryWarehouse(t), testToken)
	for _, sql := range []string{
		"COPY (select 'echo owned') TO '" + owned + "'",
		"select * from read_text('/etc/hostname')",
		"select * from read_csv('/etc/passwd')",
		"ATTACH '" + owned + "' AS x",
		"INSTALL httpfs FROM 'http://127.0.0.1:1'",
		"LOAD httpfs",
		"select * from read_csv('http://127.0.0.1:1/x.csv')",
		"insert into T values (3)",
		"delete from T",
		"create table X (a int)",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, queryRequest(sql, nil))
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"status":400`) {
			t.Errorf("%s: status %d: %s", sql, rec.Code, rec.Body)
		}
	}
	if _, err := os.Stat(owned); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a query wrote %s: %v", owned, err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, queryRequest("select count(*) from T", nil))
	if !strings.Contains(rec.Body.String(), `"rows":[[2]]`) {
		t.Fatalf("T changed: %s", rec.Body)
	}
}

// StartQueryServer on 127.0.0.1:0 writes a fresh token to the default token file of the
// port it got (mode 0600, in a 0700 directory), answers only with it, and removes the
// file when stopped.
func TestStartQueryServerTokenFile(t *testing.T) {
	config := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", config) // os.UserConfigDir on Linux and the BSDs
	if _, err := os.UserConfigDir(); err != nil {
		t.Skip(err)
	}
	userDir, _ := os.UserConfigDir()
	if userDir != config {
		t.Skipf("os.UserConfigDir is %s here, not $XDG_CONFIG_HOME", userDir)
	}
	stop, err := service.StartQueryServer("127.0.0.1:0", "", newQueryWarehouse(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	files, _ := filepath.Glob(filepath.Join(config, "sluice", "query-*.token"))
	if len(files) != 1 {
		t.Fatalf("token files %v", files)
	}
	path := files[0]
	port := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "query-"), ".token")
	addr := "127.0.0.1:" + port
	if got, err := service.QueryTokenPath("", "localhost:"+port); err != nil || got != path {
		t.Fatalf("QueryTokenPath = %q, %v; the server wrote %s", got, err, path)
	}
	for p, want := range map[string]fs.FileMode{path: 0o600, filepath.Dir(path): 0o700 | fs.ModeDir} {
		if fi, err := os.Stat(p); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v (%v)", p, fi.Mode(), want, err)
		}
	}
	token, err := service.ReadQueryToken(path)
	if err != nil || len(token) != 64 || token == testToken {
		t.Fatalf("token %q err %v", token, err)
	}

	post := func(sql string, edit func(*http.Request)) (int, string) {
		t.Helper()
		body, _ := json.Marshal(service.QueryRequest{SQL: sql})
		r, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addr+"/v1/query", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Authorization", "Bearer "+token)
		if edit != nil {
			edit(r)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("select count(*) from T", nil); code != http.StatusOK || !strings.Contains(body, `"rows":[[2]]`) {
		t.Fatalf("with the token: %d %s", code, body)
	}
	for name, edit := range map[string]func(*http.Request){
		"no token":      func(r *http.Request) { r.Header.Del("Authorization") },
		"Origin":        func(r *http.Request) { r.Header.Set("Origin", "https://attacker.example") },
		"rebound Host":  func(r *http.Request) { r.Host = "attacker.example:" + port },
		"text/plain":    func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") },
		"another token": func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+testToken) },
	} {
		if code, body := post("select 1", edit); code/100 != 4 {
			t.Errorf("%s: %d %s", name, code, body)
		}
	}
	if code, body := post("select * from read_text('/etc/hostname')", nil); code != http.StatusBadRequest {
		t.Errorf("read_text: %d %s", code, body)
	}

	stop()
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("token file outlived the server: %v", err)
	}
}

// An explicit --query-token-file is used as is; an address without a port has no default.
func TestQueryTokenPath(t *testing.T) {
	t.Parallel()
	if got, err := service.QueryTokenPath("/run/x/token", "127.0.0.1:8082"); err != nil || got != "/run/x/token" {
		t.Fatalf("%q %v", got, err)
	}
	for _, addr := range []string{"127.0.0.1", "127.0.0.1:0"} {
		if _, err := service.QueryTokenPath("", addr); err == nil {
			t.Errorf("%q: no error", addr)
		}
	}
	if _, err := service.ReadQueryToken(filepath.Join(t.TempDir(), "none")); !errors.Is(err, service.ErrNoQueryToken) {
		t.Fatalf("missing file: %v", err)
	}
}

// A token file that cannot be written stops the query server from starting, with a
// message that names the way out; nothing is left listening.
func TestStartQueryServerUnwritableTokenFile(t *testing.T) {
	t.Parallel()
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := service.StartQueryServer("127.0.0.1:0", filepath.Join(notDir, "token"), newQueryWarehouse(t), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "--query-token-file") {
		t.Fatalf("err = %v", err)
	}
}
