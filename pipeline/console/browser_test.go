package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/sluicehq/sluice/pipeline/wire"
	"github.com/twmb/franz-go/pkg/kgo"
)

// browser is a headless Chromium driven by chromedp, with the page's console errors,
// exceptions and Content-Security-Policy violations collected.
type browser struct {
	ctx  context.Context
	mu   sync.Mutex
	errs []string
	dir  string // screenshots
}

// reportCSP runs in every page before its scripts (through the DevTools protocol, so the
// page's CSP does not apply to it) and turns each CSP violation into a console error.
const reportCSP = `document.addEventListener('securitypolicyviolation', e =>
  console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + e.blockedURI));`

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromium()
	if path == "" {
		t.Skip("no chromium found (apt-get install chromium, or set SLUICE_CHROMIUM): the browser tests need one")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1400, 1000), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &browser{}
	ctx, cancelB := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		var msg string
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = "exception: " + (&chromedp.ExceptionError{ExceptionDetails: e.ExceptionDetails}).Error()
		case *runtime.EventConsoleAPICalled:
			if e.Type != "error" {
				return
			}
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, fmt.Sprintf("%s%s", a.Value, a.Description))
			}
			msg = "console.error: " + strings.Join(parts, " ")
		default:
			return
		}
		b.mu.Lock()
		b.errs = append(b.errs, msg)
		b.mu.Unlock()
	}))
	b.ctx = ctx
	b.dir = os.Getenv("SLUICE_SCREENSHOTS")
	if b.dir == "" {
		b.dir = filepath.Join(os.TempDir(), "sluice-console-screenshots")
	}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The first Run starts the browser; it must not carry a timeout.
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: reportCSP})
		return err
	}))
	if err != nil {
		cancelB()
		cancelA()
		t.Fatalf("start %s: %v", path, err)
	}
	t.Cleanup(func() { cancelB(); cancelA() })
	t.Logf("browser %s; screenshots in %s", path, b.dir)
	return b
}

// run runs steps, within 20 s.
func (b *browser) run(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.shot(t, "failed-"+strings.ReplaceAll(what, " ", "-"))
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression.
func eval[T any](t *testing.T, b *browser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// shot saves a full-page screenshot as name.png.
func (b *browser) shot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(b.dir, name+".png"), png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
	}
}

// text returns the text of the first element matching the CSS selector sel.
func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.TextContent(css(sel)))
	if err != nil {
		b.shot(t, "failed-text")
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// waitText waits until the text of sel contains want.
func (b *browser) waitText(t *testing.T, sel, want string, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, within+5*time.Second)
	defer cancel()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.textContent.includes(%q); })()`, sel, want)
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(within))); err != nil {
		got, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, sel)))
		b.shot(t, "failed-wait")
		t.Fatalf("%s never contained %q within %s; it has:\n%s", sel, want, within, got)
	}
}

// noErrors fails on any console error or exception seen so far (CSP violations
// included), then forgets them.
func (b *browser) noErrors(t *testing.T, page string) {
	t.Helper()
	b.mu.Lock()
	errs := b.errs
	b.errs = nil
	b.mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("%s: the browser reported:\n%s", page, strings.Join(errs, "\n"))
	}
}

func css(sel string) chromedp.CSS { return chromedp.CSS(sel) }

// TestConsoleInBrowser drives every console page and /docs in Debian's Chromium
// against the built-in pipeline running in process on kfake: real lag, dead letters,
// window results and events; a poison record is dead-lettered, found, replayed after
// its cause is fixed and lands exactly once in purchases.clean; HTML in dead letters
// stays text; /docs sends an event with try-it-out and a bearer token.
func TestConsoleInBrowser(t *testing.T) {
	b := newBrowser(t)
	start := time.Now()
	pl := startPlatform(t)
	t.Logf("platform up in %s", time.Since(start).Round(time.Millisecond))

	// Traffic: purchases in two past minutes over several countries and users (every
	// partition), then one that poisons the transform.
	now := time.Now().UTC().Truncate(time.Minute)
	var evs []map[string]any
	for i := range 24 {
		at := now.Add(-3 * time.Minute).Add(time.Duration(i) * time.Second)
		evs = append(evs, purchase(fmt.Sprintf("warm-%02d", i), fmt.Sprintf("u%d", i%8), []string{"DE", "FR", "US"}[i%3], "p-1", at, float64(10+i)))
	}
	pl.post(t, "purchases", evs...)
	evs = evs[:0]
	for i := range 24 {
		at := now.Add(-1 * time.Minute).Add(time.Duration(i) * time.Second)
		evs = append(evs, purchase(fmt.Sprintf("next-%02d", i), fmt.Sprintf("u%d", i%8), []string{"DE", "FR", "US"}[i%3], "p-2", at, float64(20+i)))
	}
	pl.post(t, "purchases", evs...)
	const poisonID = "poison-1"
	poisonProduct := `<script>window.__xss=1</script>"><img src=x onerror="window.__xss=2">`
	pl.post(t, "purchases", purchase(poisonID, "u-poison", "DE", poisonProduct, now.Add(-30*time.Second), 99))
	// A hand-made dead letter whose headers and value carry HTML.
	cl, err := kgo.NewClient(pl.kc.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	evil := &kgo.Record{Topic: "purchases.dlq", Partition: 0, Key: []byte("u-evil"), Value: []byte(`{"note":"<script>window.__xss=5</script>"}`),
		Headers: []kgo.RecordHeader{
			{Key: wire.HeaderClass, Value: []byte("permanent")}, {Key: wire.HeaderStage, Value: []byte("clean")},
			{Key: wire.HeaderError, Value: []byte(`bad value "><img src=x onerror="window.__xss=3">`)},
			{Key: wire.HeaderOriginalTopic, Value: []byte("purchases")},
			{Key: wire.HeaderFirstFailureTS, Value: []byte(fmt.Sprint(time.Now().UnixMicro()))},
			{Key: "x-evil", Value: []byte(`<script>window.__xss=4</script>`)},
		}}
	if err := cl.ProduceSync(context.Background(), evil).FirstErr(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the poison record in purchases.dlq", 30*time.Second, func() bool {
		for _, r := range pl.records(t, "purchases.dlq") {
			if strings.Contains(string(r.Key), "u-poison") {
				return true
			}
		}
		return false
	})

	t.Run("pipeline", func(t *testing.T) {
		b.run(t, "open /pipeline", chromedp.Navigate(pl.console+"/pipeline"), chromedp.WaitVisible(css("#topology")))
		if s := b.text(t, "#topology"); !strings.Contains(s, "sluice.clean") || !strings.Contains(s, "purchases.dlq") || !strings.Contains(s, "agg.revenue_by_country_1m") {
			t.Fatalf("topology:\n%s", s)
		}
		b.waitText(t, "#lag", "sluice.clean", 20*time.Second)
		if s := b.text(t, "#lag"); !strings.Contains(s, "purchases") {
			t.Fatalf("lag table:\n%s", s)
		}
		b.waitText(t, "#txns", "clean", 10*time.Second)
		// The clean stage committed transactions; its rate column fills on the next
		// refresh (htmx, every 3 s) from two scrapes of /metrics.
		if n := eval[int](t, b, `Number(document.querySelector('#txns tbody tr td:nth-child(2)').textContent)`); n < 1 {
			t.Fatalf("clean stage transactions: %d\n%s", n, b.text(t, "#txns"))
		}
		b.waitText(t, "#aggs", "revenue_by_country_1m", 10*time.Second)
		// htmx refreshes the figures (every 3 s, under the page's CSP): the input rate
		// needs two scrapes, so a number there shows a refresh happened.
		b.run(t, "htmx refresh", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[chromedp.Void](`[...document.querySelectorAll('#lag tbody td:last-child')].some(td => /^[0-9]+\.[0-9]$/.test(td.textContent))`,
				chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second))(ctx, tg)
			return err
		}))
		b.shot(t, "pipeline")
		b.noErrors(t, "/pipeline")
	})

	t.Run("dead letters escaped", func(t *testing.T) {
		b.run(t, "open /dlq", chromedp.Navigate(pl.console+"/dlq"), chromedp.WaitVisible(css("#dead-letters")))
		b.waitText(t, "#summary", "purchases.dlq", 5*time.Second)
		depth := strings.TrimSpace(b.text(t, `[data-depth="purchases.dlq"]`))
		if depth != "2" {
			t.Fatalf("purchases.dlq depth %q, want 2", depth)
		}
		// The list shows the HTML of both dead letters as text; the record view of the
		// hand-made one shows its headers and value as text; nothing ran.
		rows := b.text(t, "#dead-letters")
		if !strings.Contains(rows, `"><img src=x onerror="window.__xss=3">`) || !strings.Contains(rows, "<script>window.__xss=1</script>") {
			t.Fatalf("the list does not show the HTML as text:\n%s", rows)
		}
		var id string
		for _, r := range pl.records(t, "purchases.dlq") {
			if string(r.Key) == "u-evil" {
				id = fmt.Sprintf("partition=%d&offset=%d", r.Partition, r.Offset)
			}
		}
		b.run(t, "open the evil record", chromedp.Navigate(pl.console+"/dlq/record?topic=purchases.dlq&"+id), chromedp.WaitVisible(css("#headers")))
		if h := b.text(t, "#headers"); !strings.Contains(h, "<script>window.__xss=4</script>") {
			t.Fatalf("headers:\n%s", h)
		}
		if v := b.text(t, "#value"); !strings.Contains(v, `<script>window.__xss=5</script>`) {
			t.Fatalf("value:\n%s", v)
		}
		xss := eval[any](t, b, `window.__xss === undefined ? null : window.__xss`)
		imgs := eval[int](t, b, `document.querySelectorAll('img').length + document.querySelectorAll('main script').length`)
		if xss != nil || imgs != 0 {
			t.Fatalf("dead-letter HTML was interpreted: __xss=%v, injected elements %d", xss, imgs)
		}
		b.shot(t, "dead-letter-record")
		b.noErrors(t, "/dlq/record")
		// The poison record's value is decoded through the registry.
		for _, r := range pl.records(t, "purchases.dlq") {
			if string(r.Key) == "u-poison" {
				id = fmt.Sprintf("partition=%d&offset=%d", r.Partition, r.Offset)
			}
		}
		b.run(t, "open the poison record", chromedp.Navigate(pl.console+"/dlq/record?topic=purchases.dlq&"+id), chromedp.WaitVisible(css("#value")))
		if v := b.text(t, "main"); !strings.Contains(v, "Value (decoded)") || !strings.Contains(v, `"product_id": "<script>window.__xss=1</script>`) {
			t.Fatalf("poison record view:\n%s", v)
		}
		if eval[any](t, b, `window.__xss === undefined ? null : window.__xss`) != nil {
			t.Fatal("the poison record's HTML ran")
		}
		// An unknown offset says so.
		b.run(t, "unknown offset", chromedp.Navigate(pl.console+"/dlq/record?topic=purchases.dlq&partition=0&offset=9999"), chromedp.WaitVisible(css("#message")))
		if m := b.text(t, "#message"); !strings.Contains(m, "offset is unknown") {
			t.Fatalf("unknown offset: %q", m)
		}
	})

	t.Run("replay after fix", func(t *testing.T) {
		b.run(t, "filter", chromedp.Navigate(pl.console+"/dlq"), chromedp.WaitVisible(css("#filter")),
			chromedp.SendKeys(css(`#filter input[name="text"]`), "unknown product"),
			chromedp.SendKeys(css(`#filter input[name="class"]`), "permanent"),
			chromedp.Click(css(`#filter button`)))
		b.waitText(t, "#list", "1 of 2 dead letters", 10*time.Second)
		b.shot(t, "dead-letters")
		b.run(t, "select and replay", chromedp.Click(css(`#dead-letters input[type="checkbox"]`)),
			chromedp.Click(css(`#replay-selected`)), chromedp.WaitVisible(css("#replay-confirm")))
		if s := b.text(t, "#replay-confirm"); !strings.Contains(s, "Replay 1 dead letter of purchases.dlq") {
			t.Fatalf("confirmation: %q", s)
		}
		b.shot(t, "replay-confirm")
		pl.fixed.Store(true) // the transform now accepts the product
		b.run(t, "confirm", chromedp.Click(css("#replay-yes")), chromedp.WaitVisible(css("#replay-result")))
		if s := b.text(t, "#replay-result"); !strings.Contains(s, "Replayed 1 dead letter") {
			t.Fatalf("result: %q", s)
		}
		eventually(t, "the replayed record in purchases.clean", 30*time.Second, func() bool { return pl.eventIDs(t, "purchases.clean")[poisonID] > 0 })
		// Let the clean stage finish what it read (its committed offsets reach the
		// end), then count: exactly once.
		eventually(t, "the clean stage caught up", 30*time.Second, func() bool {
			lag := pl.cleanLag(t)
			return lag >= 0 && lag <= 3 // transaction markers, at most one per partition
		})
		if n := pl.eventIDs(t, "purchases.clean")[poisonID]; n != 1 {
			t.Fatalf("the replayed record is %d times in purchases.clean, want 1", n)
		}
		// Replaying it again is refused with a clear message.
		b.run(t, "replay again", chromedp.Navigate(pl.console+"/dlq?topic=purchases.dlq&class=permanent&text=unknown+product"),
			chromedp.WaitVisible(css("#dead-letters")),
			chromedp.Click(css(`#dead-letters input[type="checkbox"]`)),
			chromedp.Click(css(`#replay-selected`)), chromedp.WaitVisible(css("#replay-problems")))
		if s := b.text(t, "#replay-problems"); !strings.Contains(s, "already replayed") {
			t.Fatalf("second replay: %q", s)
		}
		b.noErrors(t, "replay")
	})

	t.Run("replay filter", func(t *testing.T) {
		// The whole filter: the hand-made dead letter, whose value is not Avro. It goes
		// back to purchases, fails to decode in the clean stage and comes back as a new
		// dead letter marked sluice-replayed.
		b.run(t, "filter", chromedp.Navigate(pl.console+"/dlq?topic=purchases.dlq&text=bad+value"),
			chromedp.WaitVisible(css("#replay-filter")))
		b.waitText(t, "#list", "1 of 2 dead letters", 5*time.Second)
		b.run(t, "replay all", chromedp.Click(css("#replay-filter")), chromedp.WaitVisible(css("#replay-confirm")))
		if s := b.text(t, "#replay-confirm"); !strings.Contains(s, "Replay 1 dead letter of purchases.dlq") {
			t.Fatalf("confirmation: %q", s)
		}
		b.run(t, "confirm", chromedp.Click(css("#replay-yes")), chromedp.WaitVisible(css("#replay-result")))
		eventually(t, "the replayed record dead-lettered again", 30*time.Second, func() bool {
			for _, r := range pl.records(t, "purchases.dlq") {
				if string(r.Key) == "u-evil" && r.Offset > 0 && headerValue(r, wire.HeaderReplayed) == "true" {
					return true
				}
			}
			return false
		})
		b.noErrors(t, "replay filter")
	})

	t.Run("replay unknown offset", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		hc := &http.Client{Jar: jar}
		resp, err := hc.Get(pl.console + "/events")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp, err = hc.PostForm(pl.console+"/dlq/replay", url.Values{"csrf": {csrfOf(t, string(page))}, "topic": {"purchases.dlq"},
			"mode": {"selected"}, "sel": {"2@777"}})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "No dead letter at purchases.dlq 2@777 (partition@offset): the offset is unknown.") {
			t.Fatalf("replay of an unknown offset: %d\n%s", resp.StatusCode, body)
		}
	})

	t.Run("windows", func(t *testing.T) {
		eventually(t, "a revenue_by_country_1m result", 40*time.Second, func() bool {
			return len(pl.records(t, "agg.revenue_by_country_1m")) > 0
		})
		b.run(t, "open /windows", chromedp.Navigate(pl.console+"/windows"), chromedp.WaitVisible(css(`table[data-live="agg.revenue_by_country_1m"]`)))
		b.waitText(t, `table[data-live="agg.revenue_by_country_1m"] tbody`, "DE", 5*time.Second)
		b.waitText(t, `.live-status[data-for="agg.revenue_by_country_1m"]`, "live", 10*time.Second)
		before := len(pl.records(t, "agg.revenue_by_country_1m"))
		// Events a minute on close the next windows: their results arrive live.
		var evs []map[string]any
		for i := range 24 {
			evs = append(evs, purchase(fmt.Sprintf("live-%02d", i), fmt.Sprintf("u%d", i%8), []string{"DE", "FR", "US"}[i%3], "p-3", now.Add(time.Duration(i)*time.Second), 5))
		}
		pl.post(t, "purchases", evs...)
		eventually(t, "new window results", 40*time.Second, func() bool { return len(pl.records(t, "agg.revenue_by_country_1m")) > before })
		b.run(t, "live row", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[chromedp.Void](`Number(document.querySelector('table[data-live="agg.revenue_by_country_1m"]').dataset.received||0) > 0`,
				chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second))(ctx, tg)
			return err
		}))
		b.shot(t, "windows")
		b.noErrors(t, "/windows")
	})

	t.Run("events", func(t *testing.T) {
		b.run(t, "open /events", chromedp.Navigate(pl.console+"/events?topic=purchases.clean&filter=country%3DFR"),
			chromedp.WaitVisible(css(`table[data-live="purchases.clean"]`)))
		b.waitText(t, `.live-status[data-for="purchases.clean"]`, "live", 10*time.Second)
		at := time.Now().UTC()
		pl.post(t, "purchases", purchase("tail-de", "u1", "DE", "p-4", at, 1), purchase("tail-fr", "u2", "FR", "p-4", at, 2))
		b.waitText(t, `table[data-live="purchases.clean"] tbody`, "tail-fr", 30*time.Second)
		if s := b.text(t, `table[data-live="purchases.clean"] tbody`); strings.Contains(s, "tail-de") {
			t.Fatalf("the filter country=FR let a DE event through:\n%s", s)
		}
		b.shot(t, "events")
		b.noErrors(t, "/events")
	})

	t.Run("docs try it out", func(t *testing.T) {
		op := `#operations-default-postEvents_purchases`
		b.run(t, "open /docs", chromedp.Navigate(pl.api+"/docs"), chromedp.WaitVisible(css(op)))
		b.run(t, "authorize", chromedp.Click(css(`.auth-wrapper .authorize`)),
			chromedp.WaitVisible(css(`.auth-container input`)),
			chromedp.SendKeys(css(`.auth-container input`), token(t, "events:write")),
			chromedp.Click(css(`.auth-btn-wrapper button.authorize`)),
			chromedp.Click(css(`.auth-btn-wrapper button.btn-done`)))
		// Send the document's own example event (the API assigns its event id).
		b.run(t, "try it out", chromedp.Click(css(op+` .opblock-summary`)),
			chromedp.WaitVisible(css(op+` textarea.body-param__text`)),
			chromedp.Click(css(op+` .btn.execute`)))
		b.waitText(t, op+` .live-responses-table tbody .response-col_status`, "202", 20*time.Second)
		resp := b.text(t, op+` .live-responses-table tbody .response-col_description pre`)
		var accepted struct {
			Accepted int      `json:"accepted"`
			IDs      []string `json:"event_ids"`
		}
		if err := json.Unmarshal([]byte(resp), &accepted); err != nil || accepted.Accepted != 1 || len(accepted.IDs) != 1 {
			t.Fatalf("try-it-out response %q: %v", resp, err)
		}
		if curl := b.text(t, op+` .curl-command`); !strings.Contains(curl, "Authorization: Bearer ") {
			t.Fatalf("the request carried no bearer token:\n%s", curl)
		}
		b.shot(t, "docs")
		eventually(t, "the try-it-out event in purchases", 20*time.Second, func() bool { return pl.eventIDs(t, "purchases")[accepted.IDs[0]] == 1 })
		b.noErrors(t, "/docs")
	})
	t.Logf("browser test took %s", time.Since(start).Round(time.Millisecond))
}
