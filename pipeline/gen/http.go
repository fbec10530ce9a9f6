package gen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/goccy/go-json"
)

// bodyHeadBytes is how much of an error response body a StatusError keeps.
const bodyHeadBytes = 512

// HTTPTarget sends batches to the Sluice ingest REST API: POST
// {BaseURL}/api/v1/events/{topic} with a JSON array body.
type HTTPTarget struct {
	// BaseURL is the API origin, e.g. "http://127.0.0.1:8080". A trailing slash is ignored.
	BaseURL string
	// Client sends the requests. Default http.DefaultClient.
	Client *http.Client
}

var _ Target = (*HTTPTarget)(nil)

// StatusError is a non-2xx answer of the ingest API. Callers branch on StatusCode (for
// example 429 and 503 are worth retrying after RetryAfter) with errors.As.
type StatusError struct {
	// URL is the request URL.
	URL string
	// StatusCode is the HTTP status code, Status its text ("503 Service Unavailable").
	StatusCode int
	Status     string
	// RetryAfter is the Retry-After header, if any.
	RetryAfter string
	// Body is the head of the response body (at most 512 bytes).
	Body string
}

// Error reports the status and the head of the body.
func (e *StatusError) Error() string {
	return fmt.Sprintf("gen: POST %s: %s: %s", e.URL, e.Status, e.Body)
}

// Send posts events as one JSON array and waits for the answer. Any 2xx is success; any
// other status is a *StatusError. An empty batch sends nothing.
func (h *HTTPTarget) Send(ctx context.Context, topic string, events []map[string]any) error {
	if len(events) == 0 {
		return nil
	}
	u := strings.TrimRight(h.BaseURL, "/") + "/api/v1/events/" + url.PathEscape(topic)
	body, err := json.Marshal(events)
	if err != nil {
		return fmt.Errorf("gen: encode %d %s events: %w", len(events), topic, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("gen: POST %s: %w", u, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	cl := h.Client
	if cl == nil {
		cl = http.DefaultClient
	}
	resp, err := cl.Do(req)
	if err != nil {
		return fmt.Errorf("gen: POST %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// Drain a bounded amount so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, bodyHeadBytes+1))
	text := strings.TrimSpace(string(head))
	if len(head) > bodyHeadBytes {
		// Drop a rune cut in half by the limit.
		text = strings.ToValidUTF8(strings.TrimSpace(string(head[:bodyHeadBytes])), "") + "..."
	}
	return &StatusError{
		URL:        u,
		StatusCode: resp.StatusCode,
		Status:     resp.Status,
		RetryAfter: resp.Header.Get("Retry-After"),
		Body:       text,
	}
}
