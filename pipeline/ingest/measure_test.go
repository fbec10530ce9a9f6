package ingest_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipeline/ingest"
)

// TestMeasureHostileClients measures the resident memory of the two attacks of issue 15
// (docs/BENCHMARKS.md, "Hostile clients: memory bound"). It only runs with
// SLUICE_MEASURE=1; each part runs on its own server with the default limits:
//
//   - slow bodies: 100 connections without a token, JWT on and --rate-limit 10, each
//     declaring a 10 MiB body and sending 1 byte of it; RSS 2 s later;
//   - large batches: 40 concurrent valid 9.85 MB batches; the peak RSS, sampled every
//     5 ms, and the answers.
func TestMeasureHostileClients(t *testing.T) {
	if os.Getenv("SLUICE_MEASURE") == "" {
		t.Skip("set SLUICE_MEASURE=1 to measure")
	}
	t.Run("slow bodies", func(t *testing.T) {
		s := newTestServer(t, nil, func(c *ingest.Config) {
			withHS256(c)
			c.RateLimit = ingest.RateLimitConfig{Max: 10}
		})
		addr := strings.TrimPrefix(serve(t, s), "http://")
		before := rssBytes()
		for range 100 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			_, _ = fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n ",
				pathBuy, ctJSON, 10<<20)
		}
		time.Sleep(2 * time.Second) // a measurement: let the server do its worst
		t.Logf("MEASURE slow bodies: 100 connections x 10 MiB declared, 1 byte sent: RSS %d MiB -> %d MiB (heap in use %d MiB)",
			before>>20, rssBytes()>>20, heapInUse()>>20)
	})
	t.Run("large batches", func(t *testing.T) {
		ev := mustJSON(t, purchase(map[string]any{"product_id": strings.Repeat("p", 900)}))
		n := 9850000 / (len(ev) + 1)
		body := []byte("[" + strings.Repeat(ev+",", n-1) + ev + "]")
		s := newTestServer(t, &fakeProducer{discard: true}, nil)
		url := serve(t, s)
		before := rssBytes()
		var peak atomic.Uint64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
					if r := rssBytes(); r > peak.Load() {
						peak.Store(r)
					}
				}
			}
		}()
		client := &http.Client{Transport: &http.Transport{}, Timeout: time.Minute}
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			counts = map[int]int{}
		)
		start := time.Now()
		for range 40 {
			wg.Go(func() {
				res, err := client.Post(url+pathBuy, ctJSON, bytes.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
				mu.Lock()
				counts[res.StatusCode]++
				mu.Unlock()
			})
		}
		wg.Wait()
		close(stop)
		<-sampled
		t.Logf("MEASURE large batches: 40 concurrent x %d bytes (%d events): answers %v in %s; RSS %d MiB, peak %d MiB",
			len(body), n, counts, time.Since(start).Round(time.Millisecond), before>>20, peak.Load()>>20)
	})
}
