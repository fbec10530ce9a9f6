package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/sluicehq/sluice/pipeline/config"
)

// healthCmd is `sluice health [--url URL] [--timeout 2s]`: one GET of a service's /healthz
// that succeeds on a 2xx answer and fails on anything else. It is the container health
// check of the Docker image, whose distroless runtime has no shell and no curl.
//
// Without --url it probes the port of --http-addr (SLUICE_HTTP_ADDR) on the loopback
// interface, so the image's HEALTHCHECK follows a service moved to another port; with the
// defaults that is http://127.0.0.1:8080/healthz.
func healthCmd(fs *flag.FlagSet, svc *config.Service, out io.Writer) func(context.Context, *slog.Logger) error {
	url := fs.String("url", "", "health `URL` to GET (default: http://127.0.0.1:<port of --http-addr>/healthz)")
	timeout := fs.Duration("timeout", 2*time.Second, "give up after this long")
	return func(ctx context.Context, _ *slog.Logger) error {
		target := *url
		if target == "" {
			u, err := healthURL(svc.HTTPAddr)
			if err != nil {
				return err
			}
			target = u
		}
		if *timeout <= 0 {
			return fmt.Errorf("--timeout: must be > 0 (got %s)", *timeout)
		}
		return probeHealth(ctx, target, *timeout, out)
	}
}

// healthURL is the /healthz URL of a service listening on addr, reached over loopback when
// addr names no host or a wildcard one (":8080", "0.0.0.0:8080", "[::]:8080").
func healthURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--http-addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}

// probeHealth GETs target once within timeout and reports the status on out.
func probeHealth(ctx context.Context, target string, timeout time.Duration, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("health %s: %w", target, err)
	}
	// A fresh client: no proxy from the environment may stand between a container and its
	// own loopback port, and no redirect is followed to somewhere else.
	cl := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	resp, err := cl.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("health %s: no answer within %s: %w", target, timeout, err)
		}
		return fmt.Errorf("health %s: %w", target, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("health %s: %s", target, resp.Status)
	}
	fmt.Fprintf(out, "%s: %s\n", target, resp.Status)
	return nil
}
