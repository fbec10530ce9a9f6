package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/sink"
)

// TestMain keeps the query token files that sluice dev and sluice sink write (and sluice
// query reads) at their default place, os.UserConfigDir()/sluice, out of the user's
// configuration directory: XDG_CONFIG_HOME is that directory on Linux.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-cmd-test-config-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_CONFIG_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// queryJSON runs `sluice query --json` against dev d and decodes its lines.
func queryJSON(t *testing.T, ctx context.Context, d *devInstance, sql string) []map[string]json.Number {
	t.Helper()
	out, err := runCmd(t, ctx, "query", "--json", "--query-addr", "127.0.0.1:"+strconv.Itoa(d.QueryPort), sql)
	if err != nil {
		t.Fatalf("sluice query %q: %v", sql, err)
	}
	var rows []map[string]json.Number
	for line := range strings.Lines(out) {
		var r map[string]json.Number
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("query printed %q: %v", line, err)
		}
		rows = append(rows, r)
	}
	return rows
}

// until polls cond every 100 ms until it holds or ctx ends (bounded by ctx).
func until(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within the deadline", what)
		case <-tick.C:
		}
	}
}

// TestDevQuery is the "done when": `sluice dev --generate 1000`, then
// `sluice query --json "select count(*) as n from PURCHASES"` grows over time, AGGREGATES
// fills (a 2 s tumbling window here, so it closes within the test), and no event id is
// in the warehouse twice.
func TestDevQuery(t *testing.T) {
	t.Parallel()
	d := startDev(t, "--generate", "1000", "--seed", "3", "--config", "testdata/short-windows.yaml")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	if !strings.Contains(d.stdout.String(), "sluice query --json") {
		t.Errorf("the banner does not say how to query:\n%s", d.stdout.String())
	}

	count := func() (n, distinct int64) {
		r := queryJSON(t, ctx, d, "select count(*) as n, count(distinct EVENT_ID) as d from PURCHASES")
		if len(r) != 1 {
			t.Fatalf("rows = %v", r)
		}
		n, _ = r[0]["n"].Int64()
		distinct, _ = r[0]["d"].Int64()
		if n != distinct {
			t.Fatalf("PURCHASES has %d rows but %d distinct event ids", n, distinct)
		}
		return n, distinct
	}
	var first int64
	until(t, ctx, "PURCHASES has rows", func() bool { first, _ = count(); return first > 0 })
	until(t, ctx, "PURCHASES grows", func() bool { n, _ := count(); return n > first })
	until(t, ctx, "AGGREGATES has a window of revenue_by_country_1m", func() bool {
		r := queryJSON(t, ctx, d, "select count(*) as n from AGGREGATES where AGGREGATION = 'revenue_by_country_1m'")
		n, _ := r[0]["n"].Int64()
		return n > 0
	})
	// Every window is in AGGREGATES once (unique key), whatever the replays.
	r := queryJSON(t, ctx, d, `select count(*) as n from (select AGGREGATION, GROUP_KEY, WINDOW_START, WINDOW_END, count(*) as c
		from AGGREGATES group by all having count(*) > 1)`)
	if n, _ := r[0]["n"].Int64(); n != 0 {
		t.Fatalf("%d windows appear more than once in AGGREGATES", n)
	}

	t.Run("table output", func(t *testing.T) {
		out, err := runCmd(t, ctx, "query", "--query-addr", "127.0.0.1:"+strconv.Itoa(d.QueryPort), "select 1 as one, 'x' as two")
		if err != nil || out != "one  two\n1    x\n" {
			t.Fatalf("out %q err %v", out, err)
		}
	})
	t.Run("bad SQL is the caller's error", func(t *testing.T) {
		_, err := runCmd(t, ctx, "query", "--query-addr", "127.0.0.1:"+strconv.Itoa(d.QueryPort), "selec nothing")
		if err == nil || !strings.Contains(err.Error(), "400 Bad Request") || !strings.Contains(err.Error(), "syntax") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a query cannot change the warehouse or touch a file", func(t *testing.T) {
		owned := filepath.Join(t.TempDir(), "owned.txt")
		for _, sql := range []string{"delete from PURCHASES", "COPY (select 'echo owned') TO '" + owned + "'", "select * from read_text('/etc/hostname')"} {
			_, err := runCmd(t, ctx, "query", "--query-addr", "127.0.0.1:"+strconv.Itoa(d.QueryPort), sql)
			if err == nil || !strings.Contains(err.Error(), "400 Bad Request") {
				t.Errorf("%s: err = %v", sql, err)
			}
		}
		if n, _ := count(); n == 0 {
			t.Fatal("a query deleted the rows")
		}
		if _, err := os.Stat(owned); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a query wrote %s: %v", owned, err)
		}
	})

	// Issue 15, defect 2: the endpoint ran SQL sent by any web page. Now it answers only
	// the token that this dev wrote to its token file (mode 0600), which sluice query
	// found by itself above.
	tokenFile := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "sluice", "query-"+strconv.Itoa(d.QueryPort)+".token")
	t.Run("the token file", func(t *testing.T) {
		fi, err := os.Stat(tokenFile)
		if err != nil || fi.Mode() != 0o600 {
			t.Fatalf("token file %s: %v %v", tokenFile, fi, err)
		}
	})
	t.Run("a web page's request is refused", func(t *testing.T) {
		owned := filepath.Join(t.TempDir(), "owned.txt")
		body := `{"sql": "COPY (select 'echo owned') TO '` + owned + `'"}`
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:"+strconv.Itoa(d.QueryPort)+"/v1/query", strings.NewReader(body))
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Origin", "https://attacker.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %s", resp.Status)
		}
		if _, err := os.Stat(owned); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the request wrote %s: %v", owned, err)
		}
	})
	t.Run("another token is refused", func(t *testing.T) {
		wrong := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(wrong, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := runCmd(t, ctx, "query", "--query-addr", "127.0.0.1:"+strconv.Itoa(d.QueryPort), "--query-token-file", wrong, "select 1")
		if err == nil || !strings.Contains(err.Error(), "401 Unauthorized") || !strings.Contains(err.Error(), wrong) {
			t.Fatalf("err = %v", err)
		}
	})
	if err := d.stop(t, 15*time.Second); err != nil {
		t.Fatalf("sluice dev: %v", err)
	}
	if _, err := os.Stat(tokenFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the token file outlived sluice dev: %v", err)
	}
}

func TestQueryErrors(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "w.duckdb")
	token := filepath.Join(t.TempDir(), "token") // a token file left by a process gone
	if err := os.WriteFile(token, []byte(strings.Repeat("ab", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "no SQL", args: []string{"query"}, wantErr: "usage: sluice query"},
		{name: "no token file", args: []string{"query", "--query-addr", "127.0.0.1:" + strconv.Itoa(freePort(t)), "select 1"},
			wantErr: "no query token at " + filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "sluice", "query-")},
		{name: "no token file says what to run", args: []string{"query", "--query-token-file", path, "select 1"},
			wantErr: "is sluice dev (or a sluice sink on DuckDB) running and answering queries at 127.0.0.1:8082?"},
		{name: "nothing listening", args: []string{"query", "--query-addr", "127.0.0.1:" + strconv.Itoa(freePort(t)), "--query-token-file", token, "select 1"},
			wantErr: "nothing answers queries at 127.0.0.1:"},
		{name: "bad max rows", args: []string{"query", "--max-rows", "0", "select 1"}, wantErr: "--max-rows"},
		{name: "missing file", args: []string{"query", "--duckdb-path", path, "select 1"}, wantErr: "w.duckdb"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runCmd(t, ctx, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// A DuckDB file is read directly when no process has it open, and a clear error names the
// way round DuckDB's one-writer lock when one has. `sluice sink --check` writes the sink's
// tables into it.
func TestQueryFileAndSinkCheck(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "w.duckdb")
	out, err := runCmd(t, ctx, "sink", "--check", "--duckdb-path", path)
	if err != nil || !strings.Contains(out, "verdict: the sink can write to DuckDB file") {
		t.Fatalf("sink --check: %q %v", out, err)
	}
	out, err = runCmd(t, ctx, "query", "--json", "--duckdb-path", path, "select count(*) as n from SLUICE_OFFSETS")
	if err != nil || out != "{\"n\":0}\n" {
		t.Fatalf("query a file: %q %v", out, err)
	}
	// Another process holds the file for writing, as a running sink would.
	hold := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestHelperHoldDuckDB$")
	hold.Env = append(os.Environ(), "SLUICE_TEST_HOLD_DUCKDB="+path)
	stdin, err := hold.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := hold.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "held\n" {
		t.Fatalf("holder said %q, %v", line, err)
	}
	_, err = runCmd(t, ctx, "query", "--duckdb-path", path, "select 1")
	if err == nil || !strings.Contains(err.Error(), "is open in another process") || !strings.Contains(err.Error(), "--query-addr") {
		t.Fatalf("query of a held file: err = %v", err)
	}
	stdin.Close()
	if err := hold.Wait(); err != nil {
		t.Fatalf("holder: %v", err)
	}

	out, err = runCmd(t, ctx, "sink", "--check", "--duckdb-path", t.TempDir())
	if err == nil || !strings.Contains(out, "FAIL") {
		t.Fatalf("sink --check on a directory: %q %v", out, err)
	}
	out, err = runCmd(t, ctx, "sink", "--check", "--warehouse", "snowflake")
	if err == nil || !strings.Contains(err.Error(), "snowflake.account: required") {
		t.Fatalf("sink --check without an account: %q %v", out, err)
	}
}

// TestHelperHoldDuckDB is not a test: TestQueryFileAndSinkCheck runs the test binary with
// it to hold a DuckDB file open for writing in a second process until stdin closes.
func TestHelperHoldDuckDB(t *testing.T) {
	path := os.Getenv("SLUICE_TEST_HOLD_DUCKDB")
	if path == "" {
		t.Skip("helper process only")
	}
	w, err := sink.OpenDuckDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	fmt.Println("held")
	_, _ = io.Copy(io.Discard, os.Stdin)
}
