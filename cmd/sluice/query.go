package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/service"
	"github.com/sluicehq/sluice/pipeline/sink"
)

// queryCmd is `sluice query [--json] "SQL"`: one query on the embedded DuckDB warehouse.
// DuckDB lets one process open a file for writing, and `sluice dev` keeps its warehouse in
// memory, so by default the query goes to the running dev (or duckdb sink) at
// --query-addr; with --duckdb-path FILE it opens a file no process holds, read-only.
func queryCmd(fs *flag.FlagSet, svc *config.Service, out io.Writer) func(context.Context, *slog.Logger) error {
	asJSON := fs.Bool("json", false, "print one JSON object per row")
	maxRows := fs.Int("max-rows", 1000, "print at most this many `rows`")
	timeout := fs.Duration("timeout", 30*time.Second, "give up on the query after this long")
	return func(ctx context.Context, _ *slog.Logger) error {
		if fs.NArg() != 1 {
			return errors.New(`usage: sluice query [--json] [--duckdb-path FILE | --query-addr HOST:PORT] "SQL"`)
		}
		if *maxRows <= 0 || *maxRows > service.MaxQueryRows {
			return fmt.Errorf("--max-rows: must be 1..%d (got %d)", service.MaxQueryRows, *maxRows)
		}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		defer cancel()
		sql := fs.Arg(0)
		var res *sink.QueryResult
		var err error
		if pathGiven(fs) {
			res, err = queryFile(ctx, svc.Sink.DuckDBPath, sql, *maxRows)
		} else {
			res, err = queryRemote(ctx, svc.Sink.QueryAddr, svc.Sink.QueryTokenFile, sql, *maxRows)
		}
		if err != nil {
			return err
		}
		return printResult(out, res, *asJSON)
	}
}

// pathGiven reports whether --duckdb-path was given on the command line or by
// SLUICE_DUCKDB_PATH (ApplyEnv sets flags from the environment, which marks them).
func pathGiven(fs *flag.FlagSet) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "duckdb-path" })
	return given
}

func queryFile(ctx context.Context, path, sql string, maxRows int) (*sink.QueryResult, error) {
	w, err := sink.OpenDuckDBReadOnly(path)
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			return nil, fmt.Errorf("DuckDB file %s is open in another process (sluice dev or sluice sink): DuckDB allows one writer process; "+
				"query through that process instead: sluice query --query-addr HOST:PORT (default %s): %w", path, config.DefaultQueryAddr, err)
		}
		return nil, err
	}
	defer w.Close()
	return w.ReadQuery(ctx, sql, maxRows)
}

// queryRemote sends sql to the query server at addr with the token that server wrote to
// its token file (service.QueryTokenPath of tokenFile and addr).
func queryRemote(ctx context.Context, addr, tokenFile, sql string, maxRows int) (*sink.QueryResult, error) {
	if addr == "" {
		return nil, errors.New("--query-addr is empty: name the sluice dev or sluice sink that answers queries, or pass --duckdb-path FILE")
	}
	path, err := service.QueryTokenPath(tokenFile, addr)
	if err != nil {
		return nil, fmt.Errorf("--query-addr %q: %w", addr, err)
	}
	token, err := service.ReadQueryToken(path)
	if errors.Is(err, service.ErrNoQueryToken) {
		return nil, fmt.Errorf("%w: is sluice dev (or a sluice sink on DuckDB) running and answering queries at %s? "+
			"It writes its query token there when it starts; start it with `go run ./cmd/sluice dev`, "+
			"give the same --query-token-file as that process, or pass --duckdb-path FILE to read a DuckDB file that no process has open", err, addr)
	}
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(service.QueryRequest{SQL: sql, MaxRows: maxRows})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/query", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("--query-addr %q: %w", addr, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("nothing answers queries at %s: start the platform with `go run ./cmd/sluice dev` "+
				"(or `sluice sink` on DuckDB), or pass --duckdb-path FILE to read a DuckDB file that no process has open", addr)
		}
		return nil, fmt.Errorf("query %s: %w", addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", addr, err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, fmt.Errorf("query refused (%s): the token in %s is not that of the process at %s (a file left by another process?); "+
			"give the --query-token-file of the process that answers there", resp.Status, path, addr)
	}
	if resp.StatusCode != http.StatusOK {
		var p struct {
			Detail string `json:"detail"`
		}
		if json.Unmarshal(b, &p) == nil && p.Detail != "" {
			return nil, fmt.Errorf("query failed (%s): %s", resp.Status, p.Detail)
		}
		return nil, fmt.Errorf("query failed (%s): %s", resp.Status, bytes.TrimSpace(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // counts and ids print exactly
	var res sink.QueryResult
	if err := dec.Decode(&res); err != nil {
		return nil, fmt.Errorf("query %s: bad answer: %w", addr, err)
	}
	return &res, nil
}

// printResult writes res as JSON lines (one object per row, keys in column order) or as
// an aligned table.
func printResult(out io.Writer, res *sink.QueryResult, asJSON bool) error {
	if asJSON {
		for _, row := range res.Rows {
			var buf bytes.Buffer
			buf.WriteByte('{')
			for i, c := range res.Columns {
				if i > 0 {
					buf.WriteByte(',')
				}
				k, _ := json.Marshal(c)
				v, err := json.Marshal(row[i])
				if err != nil {
					return err
				}
				buf.Write(k)
				buf.WriteByte(':')
				buf.Write(v)
			}
			buf.WriteString("}\n")
			if _, err := out.Write(buf.Bytes()); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(res.Columns, "\t"))
	for _, row := range res.Rows {
		cells := make([]string, len(row))
		for i, v := range row {
			switch x := v.(type) {
			case nil:
				cells[i] = "NULL"
			case string:
				cells[i] = x
			default:
				b, _ := json.Marshal(x)
				cells[i] = string(b)
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if res.Truncated {
		fmt.Fprintf(out, "(more rows than --max-rows %d; showing the first %d)\n", len(res.Rows), len(res.Rows))
	}
	return nil
}
