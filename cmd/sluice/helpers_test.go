package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// watchBuffer is an io.Writer that several goroutines may write to while a test waits
// for some text to appear in it.
type watchBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func newWatchBuffer() *watchBuffer { return &watchBuffer{changed: make(chan struct{})} }

func (w *watchBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	close(w.changed)
	w.changed = make(chan struct{})
	return n, err
}

// String returns everything written so far.
func (w *watchBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitFor blocks until the buffer contains s, done is closed or ctx ends.
func (w *watchBuffer) waitFor(ctx context.Context, s string, done <-chan struct{}) error {
	for {
		w.mu.Lock()
		found := strings.Contains(w.buf.String(), s)
		ch := w.changed
		w.mu.Unlock()
		if found {
			return nil
		}
		select {
		case <-ch:
		case <-done:
			return fmt.Errorf("stopped before %q was written", s)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %q: %w", s, ctx.Err())
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// devInstance is a `sluice dev` running inside the test process on free ports.
type devInstance struct {
	KafkaPort, RegistryPort, HTTPPort, QueryPort int

	stdout, stderr *watchBuffer
	cancel         context.CancelFunc
	done           chan struct{}
	err            error // valid once done is closed
}

// Broker is the embedded broker's address.
func (d *devInstance) Broker() string { return "127.0.0.1:" + strconv.Itoa(d.KafkaPort) }

// RegistryURL is the embedded registry's base URL.
func (d *devInstance) RegistryURL() string {
	return "http://127.0.0.1:" + strconv.Itoa(d.RegistryPort)
}

// APIURL is the ingest API's base URL.
func (d *devInstance) APIURL() string { return "http://127.0.0.1:" + strconv.Itoa(d.HTTPPort) }

// stop cancels the dev context and returns what `run` returned, failing the test if it
// takes longer than within.
func (d *devInstance) stop(t *testing.T, within time.Duration) error {
	t.Helper()
	d.cancel()
	select {
	case <-d.done:
		return d.err
	case <-time.After(within):
		t.Fatalf("sluice dev did not return within %s of cancel\nstderr:\n%s", within, d.stderr.String())
		return nil
	}
}

// startDev runs `sluice dev` with extra flags on free ports and waits until it reports
// that it is up. The instance is stopped when the test ends.
func startDev(t *testing.T, extra ...string) *devInstance {
	t.Helper()
	var lastErr error
	// A free port can be taken between picking and binding it; try a few fresh sets.
	for range 3 {
		d, err := tryStartDev(t, extra)
		if err == nil {
			return d
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("sluice dev did not start: %v", lastErr)
	return nil
}

func tryStartDev(t *testing.T, extra []string) (*devInstance, error) {
	t.Helper()
	d := &devInstance{
		KafkaPort: freePort(t), RegistryPort: freePort(t), HTTPPort: freePort(t), QueryPort: freePort(t),
		stdout: newWatchBuffer(), stderr: newWatchBuffer(), done: make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	args := []string{"dev"}
	if !slices.Contains(extra, "--brokers") { // else dev runs on those brokers
		args = append(args, "--kafka-port", strconv.Itoa(d.KafkaPort))
	}
	args = append(append(args,
		"--registry-addr", "127.0.0.1:"+strconv.Itoa(d.RegistryPort),
		"--http-addr", "127.0.0.1:"+strconv.Itoa(d.HTTPPort),
		"--instance-id", "test",
		"--query-addr", "127.0.0.1:"+strconv.Itoa(d.QueryPort),
	), extra...)
	go func() {
		defer close(d.done)
		d.err = run(ctx, args, d.stdout, d.stderr)
	}()
	wctx, wcancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer wcancel()
	if err := d.stdout.waitFor(wctx, "sluice dev is up", d.done); err != nil {
		cancel()
		<-d.done
		return nil, errors.Join(err, d.err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-d.done:
		case <-time.After(15 * time.Second):
			t.Errorf("sluice dev still running 15s after cleanup cancel")
		}
		if t.Failed() {
			t.Logf("sluice dev stdout:\n%s\nstderr:\n%s", d.stdout.String(), d.stderr.String())
		}
	})
	return d, nil
}

// runCmd runs one sluice command to completion and returns its stdout. stderr is logged
// when the test fails.
func runCmd(t *testing.T, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(ctx, args, &stdout, &stderr)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sluice %s stderr:\n%s", strings.Join(args, " "), stderr.String())
		}
	})
	return stdout.String(), err
}

// postAccepted POSTs the JSON body to url and returns the answer, failing the test unless
// it is 202 Accepted.
func postAccepted(t *testing.T, ctx context.Context, url, body string) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	respBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST = %d: %s", resp.StatusCode, respBody)
	}
	return respBody
}
