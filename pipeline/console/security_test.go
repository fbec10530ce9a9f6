package console_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/console"
	"github.com/sluicehq/sluice/pipeline/ingest"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/schema"
	"github.com/twmb/franz-go/pkg/sr"
)

// offlineOptions are console options whose Kafka and registry are never reached by the
// requests of these tests (they are refused before, or need neither).
func offlineOptions(t *testing.T) console.Options {
	t.Helper()
	src, err := sr.NewClient(sr.URLs("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	return console.Options{Pipeline: config.Default(), Kafka: kafka.Config{Brokers: []string{"127.0.0.1:1"}},
		Registry: schema.NewRegistry(src)}
}

func get(t *testing.T, cl *http.Client, u string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// An exposed console answers 401 without a token and shows no data; a token without
// scope admin gets 403; an admin token, in the header or the /login cookie, gets in.
func TestConsoleExposedNeedsAdminToken(t *testing.T) {
	o := offlineOptions(t)
	o.Exposed = true
	if _, err := console.New(o); err == nil {
		t.Fatal("an exposed console without a verifier started")
	}
	v, err := ingest.NewVerifier(ingest.AuthConfig{HS256Secret: []byte(testSecret)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	o.Verifier = v
	_, base := serveConsole(t, o)
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/pipeline", "/pipeline/stats", "/dlq", "/dlq/list?topic=purchases.dlq", "/dlq/record?topic=purchases.dlq&partition=0&offset=0",
		"/windows", "/events", "/live?topic=purchases.clean", "/"} {
		code, body := get(t, cl, base+path, nil)
		if code != http.StatusUnauthorized {
			t.Fatalf("GET %s without a token: %d, want 401", path, code)
		}
		for _, leak := range []string{"purchases", "page_views", "revenue_by_country"} {
			if strings.Contains(body, leak) {
				t.Fatalf("GET %s without a token shows %q:\n%s", path, leak, body)
			}
		}
		code, _ = get(t, cl, base+path, map[string]string{"Authorization": "Bearer not.a.jwt"})
		if code != http.StatusUnauthorized {
			t.Fatalf("GET %s with a bad token: %d, want 401", path, code)
		}
	}
	if code, _ := get(t, cl, base+"/events", map[string]string{"Authorization": "Bearer " + token(t, "events:read")}); code != http.StatusForbidden {
		t.Fatalf("a token without admin: %d, want 403", code)
	}
	if code, body := get(t, cl, base+"/events", map[string]string{"Authorization": "Bearer " + token(t, "admin")}); code != 200 || !strings.Contains(body, "purchases.clean") {
		t.Fatalf("an admin token: %d", code)
	}
	// The sign-in form sets the cookie; it needs the CSRF token of its page.
	jar, _ := cookiejar.New(nil)
	cl.Jar = jar
	_, page := get(t, cl, base+"/login", nil)
	csrf := csrfOf(t, page)
	resp, err := cl.PostForm(base+"/login", url.Values{"csrf": {csrf}, "token": {token(t, "admin")}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /login: %d", resp.StatusCode)
	}
	if code, _ := get(t, cl, base+"/events", nil); code != 200 {
		t.Fatalf("after /login: %d", code)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf(?:-token)?" (?:value|content)="([0-9a-f]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return m[1]
}

// Every state-changing request needs the page's CSRF token matching the browser's
// cookie, and a cross-origin one is refused whatever it carries.
func TestConsoleCSRF(t *testing.T) {
	_, base := serveConsole(t, offlineOptions(t))
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar}
	_, page := get(t, cl, base+"/login", nil)
	csrf := csrfOf(t, page)
	form := url.Values{"topic": {"purchases.dlq"}, "mode": {"selected"}, "sel": {"0@0"}}
	post := func(cl *http.Client, form url.Values, header map[string]string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+"/dlq/replay", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post(cl, form, nil); code != http.StatusForbidden || !strings.Contains(body, "CSRF") {
		t.Fatalf("no token: %d %s", code, body)
	}
	bad := url.Values{"csrf": {strings.Repeat("0", 64)}}
	for k, v := range form {
		bad[k] = v
	}
	if code, _ := post(cl, bad, nil); code != http.StatusForbidden {
		t.Fatalf("wrong token: %d", code)
	}
	good := url.Values{"csrf": {csrf}}
	for k, v := range form {
		good[k] = v
	}
	if code, _ := post(&http.Client{}, good, nil); code != http.StatusForbidden {
		t.Fatalf("token without its cookie: %d", code)
	}
	if code, _ := post(cl, good, map[string]string{"Sec-Fetch-Site": "cross-site"}); code != http.StatusForbidden {
		t.Fatalf("cross-site with the right token: %d", code)
	}
	if code, _ := post(cl, good, map[string]string{"Origin": "http://evil.example"}); code != http.StatusForbidden {
		t.Fatalf("foreign Origin with the right token: %d", code)
	}
	// The right token from the same origin passes the check (the replay then fails on
	// the unreachable Kafka, not on CSRF).
	if code, body := post(cl, good, map[string]string{"Sec-Fetch-Site": "same-origin"}); code == http.StatusForbidden {
		t.Fatalf("same-origin with the right token: %d %s", code, body)
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:8083": true, "localhost:8083": true, "[::1]:8083": true,
		":8083": false, "0.0.0.0:8083": false, "10.0.0.5:8083": false, "console.internal:8083": false, "junk": false} {
		if got := console.IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// Start listens at once: a taken port fails there, and so does an address beyond
// loopback without a token verifier; a loopback console answers until stopped.
func TestConsoleStart(t *testing.T) {
	o := offlineOptions(t)
	if _, _, err := console.Start(t.Context(), "0.0.0.0:0", o); err == nil {
		t.Fatal("a console on 0.0.0.0 without a verifier started")
	}
	addr, stop, err := console.Start(t.Context(), "127.0.0.1:0", o)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := console.Start(t.Context(), addr, o); err == nil {
		t.Fatalf("a second console on %s started", addr)
	}
	if code, _ := get(t, http.DefaultClient, "http://"+addr+"/events", nil); code != 200 {
		t.Fatalf("GET /events: %d", code)
	}
	stop()
	if _, err := http.Get("http://" + addr + "/events"); err == nil {
		t.Fatal("the console still answers after stop")
	}
}
