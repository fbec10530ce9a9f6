package service

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"
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

// QueryHandler answers POST /v1/query with the sink.QueryResult of the request's SQL
// (sink.SQLWarehouse.ReadQuery: one SELECT or EXPLAIN, read-only, no file or network
// access). Any web page the user opens can send requests to loopback, and a DNS name
// can be rebound to 127.0.0.1, so a request is answered only when all of these hold,
// checked on the headers in this order before the body is read:
//   - it comes from loopback, and its Host is loopback (localhost, 127.0.0.0/8 or [::1],
//     with or without a port): else 403;
//   - it has no Origin header (browsers send one with every cross-site and same-site
//     POST; `sluice query` never does): else 403;
//   - it carries Authorization: Bearer token: else 401;
//   - its Content-Type is application/json: else 415.
//
// Errors are problem+json; a failing or refused query is 400.
func QueryHandler(w *sink.SQLWarehouse, token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/query", func(rw http.ResponseWriter, r *http.Request) {
		if !fromLoopback(r) {
			problem(rw, http.StatusForbidden, "queries are answered on loopback only")
			return
		}
		if !loopbackHost(r.Host) {
			problem(rw, http.StatusForbidden, fmt.Sprintf("Host %q is not a loopback name or address: queries are answered for localhost, 127.0.0.1 and [::1] only", r.Host))
			return
		}
		if _, ok := r.Header["Origin"]; ok {
			problem(rw, http.StatusForbidden, "requests with an Origin header (from a web page) are refused: use sluice query")
			return
		}
		if !bearer(r, token) {
			rw.Header().Set("WWW-Authenticate", `Bearer realm="sluice query"`)
			problem(rw, http.StatusUnauthorized, "missing or wrong query token: send Authorization: Bearer <token> with the token this process wrote to its query token file (--query-token-file); sluice query reads it itself")
			return
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			problem(rw, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type must be application/json (got %q)", r.Header.Get("Content-Type")))
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

// loopbackHost reports whether a Host header names loopback: localhost, or an address
// in 127.0.0.0/8 or ::1, with or without a port. Any other name is one that resolved to
// this machine, as a rebound DNS name does.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == "" && ip.Unmap().IsLoopback()
}

// bearer reports whether r carries Authorization: Bearer token, comparing in constant
// time.
func bearer(r *http.Request, token string) bool {
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) == 1
}

func problem(rw http.ResponseWriter, status int, detail string) {
	rw.Header().Set("Content-Type", "application/problem+json")
	rw.WriteHeader(status)
	_ = json.NewEncoder(rw).Encode(map[string]any{
		"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail,
	})
}

// StartQueryServer serves QueryHandler on addr until the returned stop is called. It
// makes a random token for this process and writes it to the query token file
// (QueryTokenPath(tokenFile, the address listened on), mode 0600) before it answers;
// stop removes the file. An empty addr serves nothing.
func StartQueryServer(addr, tokenFile string, w *sink.SQLWarehouse, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("query server: listen %s: %w", addr, err)
	}
	token := newQueryToken()
	path, err := QueryTokenPath(tokenFile, ln.Addr().String())
	if err == nil {
		err = writeQueryToken(path, token)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("query server: %w (name a writable --query-token-file, or turn queries off with --query-addr=)", err), ln.Close())
	}
	srv := &http.Server{Handler: QueryHandler(w, token), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("query server", "err", err)
		}
	}()
	log.Info("answering sluice query", "addr", ln.Addr().String(), "token_file", path)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := removeQueryToken(path, token); err != nil {
			log.Warn("query server: remove the token file", "path", path, "err", err)
		}
	}, nil
}
