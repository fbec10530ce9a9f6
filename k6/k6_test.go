// Package k6 holds the k6 load-test scripts and the check that they type-check
// against the k6 type definitions; k6 itself is not installed here.
package k6

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// TestK6ScriptsTypeCheck runs the TypeScript compiler over the k6 scripts with the k6
// type definitions (`make deps` installs them with npm into k6/node_modules):
// a misspelled k6 API or a wrong argument fails here instead of at the start of a load
// test.
func TestK6ScriptsTypeCheck(t *testing.T) {
	tsc := "node_modules/.bin/tsc"
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, tsc, "-p", "tsconfig.json").CombinedOutput()
	if err != nil {
		t.Fatalf("tsc over the k6 scripts (run `make deps` if tsc is missing): %v\n%s", err, out)
	}
}
