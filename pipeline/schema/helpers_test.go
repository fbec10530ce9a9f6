package schema_test

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/sluicehq/sluice/pipeline/schema"
)

// fakeRegistry is an srfake registry with a request counter and a switch that makes it
// answer 503, for cache and outage tests.
type fakeRegistry struct {
	*srfake.Registry
	requests atomic.Int64
	down     atomic.Bool
}

// newRegistry starts an srfake registry and returns a Registry talking to it.
func newRegistry(t testing.TB) (*schema.Registry, *fakeRegistry) {
	t.Helper()
	fake := &fakeRegistry{Registry: srfake.New()}
	t.Cleanup(fake.Close)
	fake.Intercept(func(w http.ResponseWriter, _ *http.Request) bool {
		fake.requests.Add(1)
		if fake.down.Load() {
			http.Error(w, `{"error_code":50003,"message":"down"}`, http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	cl, err := sr.NewClient(sr.URLs(fake.URL()))
	if err != nil {
		t.Fatal(err)
	}
	return schema.NewRegistry(cl), fake
}

// builtin returns a built-in schema or fails the test.
func builtin(t testing.TB, name string) string {
	t.Helper()
	text, ok := schema.Builtin(name)
	if !ok {
		t.Fatalf("no built-in schema %s", name)
	}
	return text
}

// register registers avsc under subject or fails the test.
func register(t testing.TB, r *schema.Registry, subject, avsc string) *schema.Codec {
	t.Helper()
	c, err := r.Register(t.Context(), subject, avsc)
	if err != nil {
		t.Fatalf("Register(%s): %v", subject, err)
	}
	return c
}
