package main

import (
	"strings"
	"testing"
)

// TestReprocessTopicArguments: `sluice reprocess --topic` refuses bad arguments before it
// connects to anything (no broker runs here), each with its message.
func TestReprocessTopicArguments(t *testing.T) {
	const from, to = "2026-11-01T10:02:00Z", "2026-11-01T10:05:00Z"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--aggregation", "revenue_by_country_1m", "--topic", "purchases", "--from", from, "--to", to}, "give --aggregation or --topic, not both"},
		{[]string{"--topic", "purchases", "--from", from}, "want --topic NAME --from RFC3339 --to RFC3339"},
		{[]string{"--topic", "purchases", "--from", "yesterday", "--to", to}, `--from: want an RFC 3339 time (got "yesterday")`},
		{[]string{"--topic", "nope", "--from", from, "--to", to}, `unknown topic "nope" (the pipeline has: page_views, clicks, purchases)`},
		{[]string{"--topic", "purchases", "--from", to, "--to", from}, "must be before --to"},
		{[]string{"--topic", "purchases", "--from", from, "--to", to, "--horizon-margin", "-1h"}, "--horizon-margin must be > 0"},
		{[]string{"--topic", "purchases", "--from", from, "--to", to, "--horizon-margin", "0s"}, "--horizon-margin must be > 0"},
		{[]string{"--from", from, "--to", to}, "want --aggregation NAME --from RFC3339 --to RFC3339 (or --topic NAME"},
	} {
		_, err := runCmd(t, t.Context(), append([]string{"reprocess", "--brokers", "127.0.0.1:1"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("reprocess %v: %v, want an error containing %q", c.args, err, c.want)
		}
	}
}
