package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/stagekit"
)

// startTestPlatform runs ingest and the clean processor on an embedded kfake broker.
func startTestPlatform(t *testing.T) *Platform {
	t.Helper()
	d, sreg := setupEmbedded(t, func(svc *config.Service) {
		svc.InstanceID = "platform-test"
		svc.API.AuthDisabled = true
		svc.State.Backend = config.StateBackendMemory
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := StartPlatform(ctx, d, sreg, PlatformOptions{Listener: ln, Processor: CleanProcessor, DrainTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A platform closed by its owner drains without error and never reports a part that
// stopped by itself.
func TestPlatformClose(t *testing.T) {
	p := startTestPlatform(t)
	if p.Ingest == nil || p.Processor == nil || p.Sink != nil {
		t.Fatalf("parts: ingest %v, processor %v, sink %v: want ingest and processor", p.Ingest != nil, p.Processor != nil, p.Sink != nil)
	}
	body, err := json.Marshal(exampleEvent("page_views"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+p.Ingest.Addr()+"/api/v1/events/page_views", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("POST: %d, want 202", resp.StatusCode)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case <-p.Done():
		t.Error("Done closed by Close: no part stopped by itself")
	default:
	}
	if _, err := net.DialTimeout("tcp", p.Ingest.Addr(), time.Second); err == nil {
		t.Error("the API still listens after Close")
	}
}

// A part that stops by itself closes Done, and Close returns its error.
func TestPlatformPartStops(t *testing.T) {
	p := startTestPlatform(t)
	p.Processor.Kill()
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("Done not closed 30 s after the processor was killed")
	}
	if err := p.Close(); !errors.Is(err, stagekit.ErrKilled) {
		t.Errorf("Close: %v, want the processor's %v", err, stagekit.ErrKilled)
	}
}
