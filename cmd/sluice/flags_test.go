package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/wire"
)

var helpFlag = regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)

// helpFlags returns the flags `sluice <command> -h` lists.
func helpFlags(t *testing.T, command string) []string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{command, "-h"}, &stdout, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("sluice %s -h = %v, want flag.ErrHelp", command, err)
	}
	var names []string
	for _, m := range helpFlag.FindAllStringSubmatch(stderr.String(), -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("sluice %s -h lists no flags:\n%s", command, stderr.String())
	}
	return names
}

// serviceFlags are the names of every flag config.Service binds.
func serviceFlags() []string {
	fs := flag.NewFlagSet("all", flag.ContinueOnError)
	var s config.Service
	s.BindFlags(fs)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}

// Each command shows only the service flags it honours: the processor none of the API's
// JWT, CORS and HTTP body flags, the ingest API none of the processor's, and so on.
func TestCommandHelpListsOnlyItsFlags(t *testing.T) {
	for _, c := range []struct {
		command   string
		want, not []string
	}{
		{"process", []string{"brokers", "registry-url", "instance-id", "http-addr", "txn-timeout", "state-dir", "idle-advance", "group-protocol"},
			[]string{"jwt-hs256-secret", "jwt-issuer", "cors-origins", "cors-allow-credentials", "max-body-bytes", "auth-disabled",
				"rate-limit", "ack-timeout", "warehouse", "duckdb-path", "snowflake-account", "query-addr"}},
		{"ingest", []string{"brokers", "registry-url", "jwt-issuer", "cors-origins", "max-body-bytes", "ack-timeout", "rate-limit"},
			[]string{"txn-timeout", "state-dir", "agg-commit-interval", "warehouse", "group-protocol", "query-addr"}},
		{"sink", []string{"brokers", "warehouse", "duckdb-path", "snowflake-account", "query-addr", "sink-flush-rows"},
			[]string{"jwt-issuer", "cors-origins", "max-body-bytes", "txn-timeout", "state-dir"}},
		{"query", []string{"query-addr", "query-token-file", "duckdb-path", "json"},
			[]string{"brokers", "registry-url", "kafka-tls", "http-addr", "config"}},
		{"topics", []string{"brokers", "kafka-tls", "config"}, []string{"registry-url", "http-addr", "jwt-issuer", "state-dir"}},
		{"health", []string{"http-addr"}, []string{"brokers", "registry-url", "config"}},
		{"consume", []string{"brokers", "registry-url"}, []string{"http-addr", "jwt-issuer", "config", "instance-id"}},
		{"console", []string{"brokers", "registry-url", "jwt-issuer", "console-addr"}, []string{"cors-origins", "max-body-bytes", "http-addr"}},
		{"dev", []string{"brokers", "kafka-port", "jwt-issuer", "txn-timeout", "warehouse", "registry-compatibility"},
			[]string{"registry-url", "registry-username", "registry-local-check"}},
	} {
		t.Run(c.command, func(t *testing.T) {
			got := helpFlags(t, c.command)
			for _, w := range c.want {
				if !slices.Contains(got, w) {
					t.Errorf("sluice %s -h does not list -%s", c.command, w)
				}
			}
			for _, n := range c.not {
				if slices.Contains(got, n) {
					t.Errorf("sluice %s -h lists -%s, which it does not honour", c.command, n)
				}
			}
		})
	}
}

// The table of honoured flags and the help agree for every command, and every service
// flag is honoured by some command.
func TestCommandFlagsTableMatchesHelp(t *testing.T) {
	all := serviceFlags()
	taken := map[string]bool{}
	for command := range commandFlags {
		got := helpFlags(t, command)
		for _, name := range all {
			if honours(command, name) {
				taken[name] = true
				if !slices.Contains(got, name) {
					t.Errorf("sluice %s honours --%s but -h does not list it", command, name)
				}
			} else if slices.Contains(got, name) {
				t.Errorf("sluice %s -h lists --%s, which its table does not honour", command, name)
			}
		}
	}
	for _, name := range all {
		if !taken[name] {
			t.Errorf("no command takes --%s", name)
		}
	}
}

// A flag that a command cannot honour is an error naming the flag, never ignored. None of
// these reaches the network: the brokers named are never dialled.
func TestCommandRefusesFlagsItCannotHonour(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"process", "--jwt-issuer", "https://id.example.com"}, []string{"process does not take --jwt-issuer", "ingest"}},
		{[]string{"process", "--cors-origins", "https://a.example"}, []string{"--cors-origins"}},
		{[]string{"process", "--max-body-bytes", "1MiB"}, []string{"--max-body-bytes"}},
		{[]string{"ingest", "--state-dir", "/tmp/x"}, []string{"ingest does not take --state-dir", "process"}},
		{[]string{"topics", "--http-addr", ":1", "describe"}, []string{"--http-addr"}},
		{[]string{"query", "--brokers", "127.0.0.1:1", "select 1"}, []string{"--brokers"}},
		{[]string{"health", "--registry-url", "http://127.0.0.1:1"}, []string{"--registry-url"}},
		{[]string{"dev", "--registry-url", "http://127.0.0.1:1"}, []string{"dev does not take --registry-url"}},
		{[]string{"dev", "--kafka-tls", "--kafka-port", "1"}, []string{"--kafka-tls", "only with --brokers"}},
		{[]string{"dev", "--kafka-sasl-mechanism", "PLAIN"}, []string{"--kafka-sasl-mechanism", "only with --brokers"}},
		{[]string{"dev", "--brokers", "127.0.0.1:1", "--kafka-port", "2"}, []string{"--brokers and --kafka-port"}},
		{[]string{"process", "--no-such-flag"}, []string{"no-such-flag"}},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), c.args, &stdout, &stderr)
			if err == nil {
				t.Fatalf("run succeeded, want an error containing %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// `sluice dev --brokers host:port` runs the whole platform on that broker instead of
// starting its own: the pipeline's topics are created there, and an event posted to dev's
// API comes out of the clean stage into purchases.clean on that broker.
func TestDevOnExternalBroker(t *testing.T) {
	t.Parallel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	broker := cluster.ListenAddrs()[0]
	d := startDev(t, "--brokers", broker)
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Second)
	defer cancel()
	if out := d.stdout.String(); !strings.Contains(out, broker) || strings.Contains(out, d.Broker()) {
		t.Errorf("banner does not show the external broker %s (or shows an embedded one):\n%s", broker, out)
	}

	eventID := fmt.Sprintf("ext-%d", time.Now().UnixNano())
	body := fmt.Sprintf(`{"event_id":%q,"event_time":%q,"user_id":"u-7","session_id":"s-1","country":"FR",`+
		`"device":"desktop","order_id":"o-1","amount":5.5,"currency":"EUR","items":1,"product_id":"p-1"}`,
		eventID, time.Now().UTC().Format(time.RFC3339Nano))
	respBody := postAccepted(t, ctx, d.APIURL()+"/api/v1/events/purchases", body)
	var ack struct {
		EventIDs []string `json:"event_ids"`
	}
	if err := json.Unmarshal(respBody, &ack); err != nil || !slices.Equal(ack.EventIDs, []string{eventID}) {
		t.Fatalf("response %s (%v), want event id %s", respBody, err, eventID)
	}

	// Read purchases.clean straight from the external broker.
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ConsumeTopics("purchases.clean"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("event %s never reached purchases.clean on %s: %v", eventID, broker, ctx.Err())
		}
		found := false
		fs.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == wire.HeaderEventID && string(h.Value) == eventID {
					found = true
				}
			}
		})
		if found {
			break
		}
	}
}
