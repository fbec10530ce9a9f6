package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/sluicehq/sluice/pipeline/sink"
)

// Query server limits.
const (
	// MaxQueryRows is the most rows one `sluice query` answer carries.
	MaxQueryRows = 10000
	// maxQueryBody bounds the request body (the SQL text).
	maxQueryBody = 1 << 20
	// queryTimeout bounds one query.
	queryTimeout = 60 * time.Second
)

// QueryRequest is the body of POST /v1/query.
type QueryRequest struct {
	SQL string `json:"sql"`
	// MaxRows caps the rows returned (0 or more than MaxQueryRows: MaxQueryRows).
	MaxRows int `json:"max_rows,omitempty"`
}

// QueryHandler answers POST /v1/query with the sink.QueryResult of the request's SQL,
// run on w in a transaction that is rolled back. Errors are problem+json: 400 for a bad
// request or a failing query, 403 for a caller that is not on loopback (the endpoint
// runs arbitrary SQL without authentication; see config.SinkConfig.QueryAddr).
func QueryHandler(w *sink.SQLWarehouse) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/query", func(rw http.ResponseWriter, r *http.Request) {
		if !fromLoopback(r) {
			problem(rw, http.StatusForbidden, "queries are answered on loopback only")
			return
		}
		var req QueryRequest
		body := http.MaxBytesReader(rw, r.Body, maxQueryBody)
		if err := json.NewDecoder(body).Decode(&req); err != nil {
			problem(rw, http.StatusBadRequest, "body must be JSON {\"sql\": \"...\"}: "+err.Error())
			return
		}
		if req.MaxRows <= 0 || req.MaxRows > MaxQueryRows {
			req.MaxRows = MaxQueryRows
		}
		ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
		defer cancel()
		res, err := w.ReadQuery(ctx, req.SQL, req.MaxRows)
		if err != nil {
			status := http.StatusInternalServerError
			if errors.Is(err, sink.ErrQuery) {
				status = http.StatusBadRequest
			}
			problem(rw, status, err.Error())
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(res)
	})
	return mux
}

func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func problem(rw http.ResponseWriter, status int, detail string) {
	rw.Header().Set("Content-Type", "application/problem+json")
	rw.WriteHeader(status)
	_ = json.NewEncoder(rw).Encode(map[string]any{
		"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail,
	})
}

// StartQueryServer serves QueryHandler(w) on addr until the returned stop is called.
// An empty addr serves nothing.
func StartQueryServer(addr string, w *sink.SQLWarehouse, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("query server: listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: QueryHandler(w), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("query server", "err", err)
		}
	}()
	log.Info("answering sluice query", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
