package main

import (
	"bytes"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/config"
)

// runHealth parses args the way run does and calls the health command.
func runHealth(t *testing.T, args ...string) (string, error) {
	t.Helper()
	fs := flag.NewFlagSet("sluice health", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var svc config.Service
	svc.BindFlags(fs)
	var out bytes.Buffer
	fn := healthCmd(fs, &svc, &out)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	err := fn(t.Context(), slog.New(slog.DiscardHandler))
	return out.String(), err
}

// refusedAddr returns a 127.0.0.1 address nothing listens on any more.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestHealthCmd(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /down", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "draining", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET /moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/healthz", http.StatusFound)
	})
	mux.HandleFunc("GET /hang", func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // answers only when the client gives up
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	srvPort := srv.Listener.Addr().(*net.TCPAddr).Port
	refused := refusedAddr(t)

	tests := []struct {
		name    string
		args    []string
		wantErr string // "" means success
		wantOut string
	}{
		{name: "200 is healthy", args: []string{"--url", srv.URL + "/healthz"}, wantOut: "200 OK"},
		{name: "503 is unhealthy", args: []string{"--url", srv.URL + "/down"}, wantErr: "503 Service Unavailable"},
		{name: "404 is unhealthy", args: []string{"--url", srv.URL + "/nope"}, wantErr: "404"},
		{name: "redirect is not followed", args: []string{"--url", srv.URL + "/moved"}, wantErr: "302"},
		{name: "connection refused", args: []string{"--url", "http://" + refused + "/healthz"}, wantErr: "refused"},
		{name: "no answer in time", args: []string{"--url", srv.URL + "/hang", "--timeout", "50ms"}, wantErr: "no answer within 50ms"},
		{name: "bad url", args: []string{"--url", "http://[::1"}, wantErr: "health"},
		{name: "bad timeout", args: []string{"--url", srv.URL + "/healthz", "--timeout", "0s"}, wantErr: "--timeout"},
		{
			name:    "default url follows --http-addr",
			args:    []string{"--http-addr", ":" + strconv.Itoa(srvPort)},
			wantOut: "http://127.0.0.1:" + strconv.Itoa(srvPort) + "/healthz: 200 OK",
		},
		{name: "default url refused", args: []string{"--http-addr", refused}, wantErr: "http://" + refused + "/healthz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runHealth(t, tt.args...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("health = %v, want nil", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("health = %v, want error containing %q", err, tt.wantErr)
			}
			if !strings.Contains(out, tt.wantOut) {
				t.Errorf("output %q does not contain %q", out, tt.wantOut)
			}
		})
	}
}

func TestHealthURL(t *testing.T) {
	tests := []struct {
		name, addr, want, wantErr string
	}{
		{name: "port only", addr: ":8080", want: "http://127.0.0.1:8080/healthz"},
		{name: "ipv4 wildcard", addr: "0.0.0.0:9000", want: "http://127.0.0.1:9000/healthz"},
		{name: "ipv6 wildcard", addr: "[::]:8080", want: "http://127.0.0.1:8080/healthz"},
		{name: "named host kept", addr: "10.1.2.3:8080", want: "http://10.1.2.3:8080/healthz"},
		{name: "ipv6 host kept", addr: "[::1]:8080", want: "http://[::1]:8080/healthz"},
		{name: "no port", addr: "localhost", wantErr: "--http-addr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := healthURL(tt.addr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("healthURL(%q) = %q, %v; want error containing %q", tt.addr, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("healthURL(%q) = %q, %v; want %q", tt.addr, got, err, tt.want)
			}
		})
	}
}
