package schema_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// strictRegistry is franz-go's srfake extended with what srfake does not do: it
// enforces each subject's compatibility mode when a schema is registered, and it checks
// credentials the way a secured Confluent Schema Registry does. Behaviour taken from
// Confluent's Schema Registry API reference (docs.confluent.io, "Schema Registry API
// Reference"):
//
//   - The modes: BACKWARD (the default: a consumer on the new schema reads data written
//     with the latest registered one), FORWARD (a consumer on the latest registered
//     schema reads data written with the new one), FULL (both), each checked against the
//     latest version only, or against every registered version with _TRANSITIVE; NONE
//     checks nothing.
//   - PUT /config/{subject} takes {"compatibility": "<MODE>"} and answers the same body;
//     an unknown mode is 422 with error code 42203 ("Invalid compatibility level").
//   - POST /subjects/{subject}/versions of a schema the subject already holds returns its
//     id without a check ("the same" includes defaults: the registry compares the
//     schema's full JSON, not Avro's parsing canonical form, which drops them); an incompatible schema is 409 with error code 409 and the
//     message "Schema being registered is incompatible with an earlier schema for subject
//     ...".
//   - Errors are JSON {"error_code": N, "message": "..."}; missing or wrong credentials
//     are 401 (error code 40101), a principal without the right to an operation 403
//     (error code 40301).
//
// Avro compatibility itself is decided with hamba/avro's schema resolution rules, the
// fake's stand-in for the registry's own Avro checker. Mutual TLS is the server's TLS
// config (newStrictRegistry with a tls option), not this handler.
type strictRegistry struct {
	*srfake.Registry
	srv *httptest.Server

	// enforce: check modes on registration (false: accept all, as srfake does).
	enforce bool
	// auth is the exact Authorization header wanted; "" accepts any request.
	auth string
	// readOnlyConfig answers 403 to PUT /config/{subject}, as for a principal that may
	// register schemas but not change subject config.
	readOnlyConfig bool

	mu       sync.Mutex
	modes    map[string]string // subject -> mode set by PUT /config/{subject}
	requests atomic.Int64
	down     atomic.Bool
}

// strictOption configures a strictRegistry before it starts.
type strictOption func(*strictRegistry)

func withBasicAuth(user, pass string) strictOption {
	return func(s *strictRegistry) {
		req, _ := http.NewRequest(http.MethodGet, "http://x", nil)
		req.SetBasicAuth(user, pass)
		s.auth = req.Header.Get("Authorization")
	}
}

func withBearer(token string) strictOption {
	return func(s *strictRegistry) { s.auth = "Bearer " + token }
}

func withoutEnforcement() strictOption { return func(s *strictRegistry) { s.enforce = false } }

func withReadOnlyConfig() strictOption { return func(s *strictRegistry) { s.readOnlyConfig = true } }

// newStrictRegistry starts a strict registry over plain HTTP, or over TLS when
// tlsServer is set (the caller fills its TLS config, e.g. to demand client certs).
func newStrictRegistry(t testing.TB, tlsServer func(*httptest.Server), opts ...strictOption) *strictRegistry {
	t.Helper()
	s := &strictRegistry{Registry: srfake.NewRegistry(), enforce: true, modes: map[string]string{}}
	for _, o := range opts {
		o(s)
	}
	s.srv = httptest.NewUnstartedServer(s)
	// Refused TLS handshakes are what the mutual TLS test wants; do not log them.
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tlsServer != nil {
		tlsServer(s.srv)
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	t.Cleanup(s.srv.Close)
	return s
}

// URL returns the registry's base URL.
func (s *strictRegistry) URL() string { return s.srv.URL }

// Close stops the server.
func (s *strictRegistry) Close() { s.srv.Close() }

// mode returns the mode set on subject, "" if none was.
func (s *strictRegistry) mode(subject string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.modes[subject]
}

func writeRegistryError(w http.ResponseWriter, status, code int, format string, a ...any) {
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error_code": code, "message": fmt.Sprintf(format, a...)})
}

func (s *strictRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	s.requests.Add(1)
	if s.down.Load() {
		writeRegistryError(w, http.StatusServiceUnavailable, 50003, "down")
		return
	}
	if s.auth != "" && req.Header.Get("Authorization") != s.auth {
		writeRegistryError(w, http.StatusUnauthorized, 40101, "Unauthorized")
		return
	}
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	switch {
	case req.Method == http.MethodPut && len(parts) == 2 && parts[0] == "config":
		s.putConfig(w, req, parts[1])
		return
	case req.Method == http.MethodPost && len(parts) == 3 && parts[0] == "subjects" && parts[2] == "versions":
		body, err := io.ReadAll(req.Body)
		if err != nil {
			writeRegistryError(w, http.StatusBadRequest, 400, "%v", err)
			return
		}
		if msg := s.check(parts[1], body); msg != "" {
			writeRegistryError(w, http.StatusConflict, http.StatusConflict, "%s", msg)
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	s.Handler().ServeHTTP(w, req)
}

func (s *strictRegistry) putConfig(w http.ResponseWriter, req *http.Request, subject string) {
	if s.readOnlyConfig {
		writeRegistryError(w, http.StatusForbidden, 40301, "User is denied operation Write on Subject: %s", subject)
		return
	}
	var body struct {
		Compatibility string `json:"compatibility"`
	}
	var lvl sr.CompatibilityLevel
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil || lvl.UnmarshalText([]byte(body.Compatibility)) != nil {
		writeRegistryError(w, http.StatusUnprocessableEntity, 42203,
			"Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")
		return
	}
	mode := lvl.String()
	s.mu.Lock()
	s.modes[subject] = mode
	s.mu.Unlock()
	_ = s.SetCompat(subject, lvl)
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	_ = json.NewEncoder(w).Encode(map[string]string{"compatibility": mode})
}

// check returns why the schema in body may not be registered under subject, "" if it
// may (or srfake should answer: a malformed body).
func (s *strictRegistry) check(subject string, body []byte) string {
	if !s.enforce {
		return ""
	}
	var in sr.Schema
	if json.Unmarshal(body, &in) != nil {
		return ""
	}
	next, err := avro.Parse(in.Schema)
	if err != nil {
		return ""
	}
	var versions []avro.Schema
	for v := 1; ; v++ {
		ss, ok := s.GetSchema(subject, v)
		if !ok {
			break
		}
		old, err := avro.Parse(ss.Schema.Schema)
		if err != nil {
			return fmt.Sprintf("version %d is not Avro", v)
		}
		if sameJSON(old, next) {
			return "" // already registered: the registry returns its id
		}
		versions = append(versions, old)
	}
	mode := s.mode(subject)
	if mode == "" {
		mode = "BACKWARD"
	}
	base, transitive := strings.CutSuffix(mode, "_TRANSITIVE")
	if base == "NONE" || len(versions) == 0 {
		return ""
	}
	if !transitive {
		versions = versions[len(versions)-1:]
	}
	compat := avro.NewSchemaCompatibility()
	for _, old := range versions {
		if base == "BACKWARD" || base == "FULL" {
			if err := compat.Compatible(next, old); err != nil {
				return fmt.Sprintf("Schema being registered is incompatible with an earlier schema for subject %q, details: [%v]", subject, err)
			}
		}
		if base == "FORWARD" || base == "FULL" {
			if err := compat.Compatible(old, next); err != nil {
				return fmt.Sprintf("Schema being registered is incompatible with an earlier schema for subject %q, details: [%v]", subject, err)
			}
		}
	}
	return ""
}

// sameJSON reports whether two schemas have the same full JSON form (defaults included).
func sameJSON(a, b avro.Schema) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}
