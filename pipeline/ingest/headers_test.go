package ingest_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pipeline/ingest"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// postWithHeader posts body to purchases as JSON with the request headers h, which
// may repeat a name (testServer.do takes a map).
func postWithHeader(t *testing.T, s *testServer, body string, h http.Header) response {
	t.Helper()
	req := httptest.NewRequest("POST", pathBuy, strings.NewReader(body))
	req.Header.Set("Content-Type", ctJSON)
	for k, vs := range h {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	res, err := s.App().Test(req, 5000)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

// manyHeaders returns n X-Sluice-Header-h<i> headers.
func manyHeaders(n int) http.Header {
	h := http.Header{}
	for i := range n {
		h.Set(ingest.HeaderClientPrefix+"h"+strconv.Itoa(i), "v")
	}
	return h
}

// X-Sluice-Header-<name> request headers become record headers <name> on every record.
func TestClientHeaders(t *testing.T) {
	name64 := strings.Repeat("n", 64)
	tests := []struct {
		name       string
		header     http.Header
		wantStatus int
		want       map[string]string // record headers every record must have
		wantCount  int               // client headers per record, when 202
	}{
		{name: "none", header: http.Header{}, wantStatus: 202},
		{name: "one, lowercased", header: http.Header{"X-Sluice-Header-Tenant": {"acme"}}, wantStatus: 202,
			want: map[string]string{"tenant": "acme"}, wantCount: 1},
		{name: "dots, underscores, digits", header: http.Header{
			"X-Sluice-Header-Trace.Id": {"abc"}, "X-Sluice-Header-Region_2": {"eu-west-1"},
		}, wantStatus: 202, want: map[string]string{"trace.id": "abc", "region_2": "eu-west-1"}, wantCount: 2},
		{name: "empty value", header: http.Header{"X-Sluice-Header-Flag": {""}}, wantStatus: 202,
			want: map[string]string{"flag": ""}, wantCount: 1},
		{name: "UTF-8 value", header: http.Header{"X-Sluice-Header-City": {"K\u00f6ln"}}, wantStatus: 202,
			want: map[string]string{"city": "K\u00f6ln"}, wantCount: 1},
		{name: "16 headers", header: manyHeaders(16), wantStatus: 202, want: map[string]string{"h0": "v", "h15": "v"}, wantCount: 16},
		{name: "64 character name", header: http.Header{"X-Sluice-Header-" + name64: {"v"}}, wantStatus: 202,
			want: map[string]string{name64: "v"}, wantCount: 1},
		{name: "1024 byte value", header: http.Header{"X-Sluice-Header-Big": {strings.Repeat("v", 1024)}}, wantStatus: 202,
			want: map[string]string{"big": strings.Repeat("v", 1024)}, wantCount: 1},
		{name: "similar names are not client headers", header: http.Header{"X-Sluice-Headers": {"x"}, "X-Sluice-Header": {"y"}},
			wantStatus: 202},

		{name: "17 headers", header: manyHeaders(17), wantStatus: 400},
		{name: "65 character name", header: http.Header{"X-Sluice-Header-" + name64 + "n": {"v"}}, wantStatus: 400},
		{name: "1025 byte value", header: http.Header{"X-Sluice-Header-Big": {strings.Repeat("v", 1025)}}, wantStatus: 400},
		{name: "no name", header: http.Header{"X-Sluice-Header-": {"v"}}, wantStatus: 400},
		{name: "plus in name", header: http.Header{"X-Sluice-Header-A+b": {"v"}}, wantStatus: 400},
		{name: "tilde in name", header: http.Header{"X-Sluice-Header-A~b": {"v"}}, wantStatus: 400},
		{name: "reserved sluice-event-id", header: http.Header{"X-Sluice-Header-Sluice-Event-Id": {"forged"}}, wantStatus: 400},
		{name: "reserved sluice- prefix", header: http.Header{"X-Sluice-Header-Sluice-Anything": {"v"}}, wantStatus: 400},
		{name: "reserved ce_ prefix", header: http.Header{"X-Sluice-Header-Ce_source": {"forged"}}, wantStatus: 400},
		{name: "given twice", header: http.Header{"X-Sluice-Header-Tenant": {"a", "b"}}, wantStatus: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, nil, nil)
			body := mustJSON(t, []any{purchase(map[string]any{"event_id": "a"}), purchase(map[string]any{"event_id": "b"})})
			res := postWithHeader(t, s, body, tt.header)
			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", res.status, tt.wantStatus, res.body)
			}
			recs := s.producer.records()
			if tt.wantStatus != 202 {
				if p := res.problem(t); p.Type != ingest.ProblemInvalid || !strings.Contains(p.Detail, ingest.HeaderClientPrefix) {
					t.Errorf("problem = %+v, want an invalid problem naming the header", p)
				}
				if len(recs) != 0 {
					t.Errorf("%d records produced", len(recs))
				}
				return
			}
			if len(recs) != 2 {
				t.Fatalf("%d records, want 2", len(recs))
			}
			for i, r := range recs {
				for k, v := range tt.want {
					if got, ok := header(r, k); !ok || got != v {
						t.Errorf("record %d header %s = %q (present %v), want %q", i, k, got, ok, v)
					}
				}
				got := 0
				for _, h := range r.Headers {
					if !strings.HasPrefix(h.Key, "sluice-") {
						got++
					}
				}
				if got != tt.wantCount {
					t.Errorf("record %d has %d client headers, want %d: %v", i, got, tt.wantCount, r.Headers)
				}
				if id, _ := header(r, wire.HeaderEventID); id != []string{"a", "b"}[i] {
					t.Errorf("record %d %s = %q", i, wire.HeaderEventID, id)
				}
			}
		})
	}
}
