package main

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// `sluice console` against a running `sluice dev` serves every page with the pipeline's
// data; on an address beyond loopback without JWT settings it refuses to start.
func TestConsoleCommand(t *testing.T) {
	d := startDev(t, "--generate", "100", "--seed", "5")
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	common := []string{"--brokers", d.Broker(), "--registry-url", d.RegistryURL()}

	err := run(t.Context(), append([]string{"console", "--console-addr", "0.0.0.0:0"}, common...), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "scope admin") {
		t.Fatalf("a console beyond loopback without JWT settings: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	out := newWatchBuffer()
	done := make(chan struct{})
	var runErr error
	go func() {
		defer close(done)
		runErr = run(ctx, append([]string{"console", "--console-addr", addr, "--metrics-url", d.APIURL() + "/metrics"}, common...), out, io.Discard)
	}()
	wctx, wcancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer wcancel()
	if err := out.waitFor(wctx, "sluice console on http://"+addr, done); err != nil {
		cancel()
		<-done
		t.Fatalf("console did not start: %v %v", err, runErr)
	}
	for path, want := range map[string]string{
		"/pipeline": "sluice.clean", "/dlq": "purchases.dlq", "/windows": "agg.revenue_by_country_1m",
		"/events?topic=clicks.clean": "New records of clicks.clean",
	} {
		code, body := httpGet(t, t.Context(), "http://"+addr+path)
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("GET %s: %d, want %q in:\n%s", path, code, want, body)
		}
	}
	cancel()
	select {
	case <-done:
		if runErr != nil {
			t.Fatalf("sluice console: %v", runErr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("sluice console did not stop within 15s of cancel")
	}
}
