package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/harness"
	"github.com/sluicehq/sluice/pipeline/gen"
	"github.com/sluicehq/sluice/pipeline/stream/pebblestore"
)

// `sluice process` given a --state-dir it cannot use exits at start-up with an error
// that names the directory, before it consumes anything: a path under a regular file
// (not writable), and a directory another process holds (here the test process).
func TestProcessBadStateDir(t *testing.T) {
	p := harness.Start(t, harness.WithoutProcessor())
	const topic = gen.Purchases
	post202(t, p, topic, "application/json", mustJSON(t, events(t, topic, 7, 10)))

	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	held := filepath.Join(t.TempDir(), "held")
	lock, err := pebblestore.LockRoot(held)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lock.Close() })

	cases := []struct {
		name, dir, want string
	}{
		{"not writable", filepath.Join(file, "state"), "not writable"},
		{"locked by another process", held, "locked"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := p.StartCommand("process", "bad-state-dir", "--state-dir", c.dir, "--log-level", "warn")
			if err := cmd.Exited(30 * time.Second); err == nil {
				t.Fatalf("sluice process exited 0 with --state-dir %s:\n%s", c.dir, cmd.Output())
			}
			out := cmd.Output()
			if !strings.Contains(out, c.dir) || !strings.Contains(out, c.want) {
				t.Fatalf("the error does not name %s and say %q:\n%s", c.dir, c.want, out)
			}
		})
	}
	// Nothing was processed: .clean is empty.
	if got := p.ReadAll(topic + ".clean"); len(got) != 0 {
		t.Fatalf(".clean holds %d records after starts that must have failed", len(got))
	}
}
