package main

import (
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/pipeline/config"
)

// The service flags (config.Service.BindFlags) come in groups; each command registers
// only the groups it honours, so `sluice <command> -h` lists only those and any other
// flag is an error. A name ending in "*" is a prefix.
var flagGroups = map[string][]string{
	"log":      {"log-level", "log-format"},
	"pipeline": {"config"},
	"kafka":    {"brokers", "kafka-*"},
	"registry": {"registry-url", "registry-username", "registry-password", "registry-bearer-token", "registry-tls-*"},
	// registry-setup: how Setup registers the pipeline's schemas.
	"registry-setup": {"registry-compatibility", "registry-subject-compatibility", "registry-local-check"},
	// dev-registry: the same for dev's embedded registry, whose local check is always on.
	"dev-registry": {"registry-compatibility", "registry-subject-compatibility"},
	"instance":     {"instance-id"},
	"http":         {"http-addr"},
	"ingest": {"max-body-bytes", "ack-timeout", "max-future", "http-read-timeout", "max-inflight-bytes",
		"max-connections", "max-connections-per-ip", "max-buffered-bytes", "idempotency-keys", "idempotency-ttl"},
	"api":       {"auth-disabled", "jwt-*", "rate-limit*", "trusted-proxies", "cors-*"},
	"jwt":       {"jwt-*"},
	"groups":    {"group-session-timeout", "group-protocol"},
	"txn":       {"txn-timeout", "txn-max-records", "txn-max-time", "agg-commit-interval", "idle-advance"},
	"state":     {"state-*"},
	"warehouse": {"warehouse", "duckdb-path", "sink-flush-*", "snowflake-*"},
	"query":     {"query-addr", "query-token-file", "duckdb-path"},
	// produce: what generate --to kafka reads of the ingest settings.
	"produce": {"ack-timeout", "max-buffered-bytes", "max-future"},
}

// commandFlags are the flag groups each command honours.
var commandFlags = map[string][]string{
	// dev runs every service on its own registry: the registry connection flags and
	// --registry-local-check (always on for the embedded registry) do not apply; the
	// Kafka flags apply with --brokers (devCmd refuses them otherwise).
	"dev": {"log", "pipeline", "kafka", "instance", "http", "ingest", "api", "groups", "txn", "state",
		"warehouse", "query", "dev-registry"},
	"ingest":   {"log", "pipeline", "kafka", "registry", "registry-setup", "instance", "http", "ingest", "api"},
	"process":  {"log", "pipeline", "kafka", "registry", "registry-setup", "instance", "http", "groups", "txn", "state"},
	"sink":     {"log", "pipeline", "kafka", "registry", "registry-setup", "instance", "http", "groups", "warehouse", "query"},
	"query":    {"log", "query"},
	"consume":  {"log", "kafka", "registry"},
	"generate": {"log", "pipeline", "kafka", "registry", "registry-setup", "produce"},
	"topics":   {"log", "pipeline", "kafka"},
	"health":   {"log", "http"},
	"dlq":      {"log", "kafka", "registry"},
	"console":  {"log", "pipeline", "kafka", "registry", "jwt"},
	// reprocess registers the pipeline's schemas (Setup) to encode its results.
	"reprocess": {"log", "pipeline", "kafka", "registry", "registry-setup"},
	// reset deletes the stage's local state under --state-dir.
	"reset": {"log", "pipeline", "kafka", "state"},
}

// honours reports whether command takes the service flag name.
func honours(command, name string) bool {
	for _, g := range commandFlags[command] {
		for _, p := range flagGroups[g] {
			if prefix, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(name, prefix) || p == name {
				return true
			}
		}
	}
	return false
}

// bindServiceFlags registers on fs the service flags command honours, writing into svc.
// Every field of svc gets its default, bound or not.
func bindServiceFlags(command string, fs *flag.FlagSet, svc *config.Service) {
	all := flag.NewFlagSet("sluice", flag.ContinueOnError)
	svc.BindFlags(all)
	all.VisitAll(func(f *flag.Flag) {
		if honours(command, f.Name) {
			fs.Var(f.Value, f.Name, f.Usage)
		}
	})
}

// notHonoured explains a flag the flag package did not know: a service flag of other
// commands gets an error that says which commands take it; anything else keeps err.
func notHonoured(command string, err error) error {
	name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -")
	if !ok {
		return err
	}
	name = strings.TrimPrefix(name, "-")
	var takers []string
	for c := range commandFlags {
		if honours(c, name) {
			takers = append(takers, c)
		}
	}
	if len(takers) == 0 {
		return err
	}
	slices.Sort(takers)
	return fmt.Errorf("%s does not take --%s (a flag of: %s)", command, name, strings.Join(takers, ", "))
}
