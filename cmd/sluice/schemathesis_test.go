package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestSchemathesis runs schemathesis (PyPI; `make deps` installs it) against the
// /openapi.json of a running `sluice dev`: it generates valid and invalid requests for
// every documented operation and checks that none gets a 5xx and every response (status,
// content type, headers, body) matches the document.
func TestSchemathesis(t *testing.T) {
	if testing.Short() {
		t.Skip("generates a few hundred requests")
	}
	bin, err := exec.LookPath("schemathesis")
	if err != nil {
		t.Fatal("schemathesis is not installed: `make deps` installs it (pip install schemathesis)")
	}
	d := startDev(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", d.APIURL()+"/openapi.json",
		"--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
		"--max-examples", "25", "--request-timeout", "10", "--seed", "1",
		"--suppress-health-check", "all", "--no-color")
	cmd.Dir = t.TempDir() // its cache and reports stay out of the tree
	out, err := cmd.CombinedOutput()
	t.Logf("schemathesis:\n%s", tailLines(string(out), 40))
	if err != nil {
		t.Fatalf("schemathesis found problems: %v", err)
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
