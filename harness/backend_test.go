package harness

import (
	"testing"
	"time"
)

// The testcontainers backend compiles everywhere and, without a Docker engine, skips
// the test with a reason instead of panicking. Where Docker runs, the pipeline starts on
// the container broker and its clean stage catches up.
func TestTestcontainersBackendSkipsWithoutDocker(t *testing.T) {
	t.Setenv("SLUICE_TEST_BACKEND", "testcontainers")
	b := BackendFromEnv(t)
	if b.Name() != "testcontainers" {
		t.Fatalf("backend %s", b.Name())
	}
	t.Run("start", func(t *testing.T) {
		p := Start(t, WithBackend(b), WithCleanOnly())
		p.WaitCaughtUp("sluice.clean", time.Minute, "purchases")
	})
}
