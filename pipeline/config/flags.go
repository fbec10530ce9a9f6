package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// EnvPrefix starts the environment variable of every flag: --ack-timeout is read from
// SLUICE_ACK_TIMEOUT.
const EnvPrefix = "SLUICE_"

// DefaultService returns the service configuration with every documented default: brokers
// 127.0.0.1:9092, registry http://127.0.0.1:8081, HTTP on :8080, the host name as instance
// id, 10 MiB bodies, 5s ack timeout, 5m max future, 64 MiB producer buffer, 60s transaction
// timeout, transactions of at most 5000 records or 50ms, log level info.
func DefaultService() Service {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "sluice"
	}
	return Service{
		Brokers:           []string{"127.0.0.1:9092"},
		RegistryURL:       "http://127.0.0.1:8081",
		HTTPAddr:          ":8080",
		InstanceID:        host,
		MaxBodyBytes:      10 << 20,
		AckTimeout:        5 * time.Second,
		MaxFuture:         5 * time.Minute,
		ReadTimeout:       30 * time.Second,
		MaxConnections:    4096,
		MaxBufferedBytes:  64 << 20,
		IdempotencyKeys:   100_000,
		IdempotencyTTL:    24 * time.Hour,
		TxnTimeout:        60 * time.Second,
		TxnMaxRecords:     5000,
		TxnMaxTime:        50 * time.Millisecond,
		AggCommitInterval: DefaultAggCommitInterval,
		LogLevel:          "info",
		LogFormat:         "text",
		API:               APIConfig{RateLimitWindow: DefaultRateLimitWindow},
		Sink: SinkConfig{Warehouse: WarehouseDuckDB, DuckDBPath: DefaultDuckDBPath, FlushRows: DefaultSinkFlushRows,
			FlushBytes: DefaultSinkFlushBytes, FlushInterval: DefaultSinkFlushInterval, QueryAddr: DefaultQueryAddr},

		GroupSessionTimeout: DefaultGroupSessionTimeout,
		GroupProtocol:       GroupProtocolClassic,
	}
}

// BindFlags registers one flag per field of s on fs, each defaulting to the value in
// DefaultService (registering overwrites s with those defaults). fs.Parse then writes the
// command line into s; call ApplyEnv after it to fill the flags not given from SLUICE_*.
// Byte sizes accept a plain number or a unit: "10MiB", "64MB", "512KiB".
func (s *Service) BindFlags(fs *flag.FlagSet) {
	d := DefaultService()
	fs.StringVar(&s.Config, "config", d.Config, "pipeline `file` (YAML); empty uses the built-in pipeline")
	s.Brokers = d.Brokers
	fs.Var((*listValue)(&s.Brokers), "brokers", "Kafka seed brokers, comma-separated `host:port` list")
	fs.StringVar(&s.RegistryURL, "registry-url", d.RegistryURL, "schema registry base `URL`")
	fs.StringVar(&s.HTTPAddr, "http-addr", d.HTTPAddr, "ingest API and /metrics listen `address`")
	fs.StringVar(&s.InstanceID, "instance-id", d.InstanceID, "instance `name`, unique per replica and stable across its restarts: part of transactional ids and the static consumer-group member id (default: host name)")
	s.MaxBodyBytes = d.MaxBodyBytes
	fs.Var((*bytesValue)(&s.MaxBodyBytes), "max-body-bytes", "request body `size` limit after decompression")
	fs.DurationVar(&s.AckTimeout, "ack-timeout", d.AckTimeout, "how long ingest waits for Kafka acks before answering 503")
	fs.DurationVar(&s.MaxFuture, "max-future", d.MaxFuture, "reject events whose event_time is further ahead of receive time")
	fs.DurationVar(&s.ReadTimeout, "http-read-timeout", d.ReadTimeout, "cut off a client that takes longer to send one request (slow bodies)")
	s.MaxInflightBytes = d.MaxInflightBytes
	fs.Var((*bytesValue)(&s.MaxInflightBytes), "max-inflight-bytes", "request body `size` ingest holds across all requests; past it 503 before the body is read (0: 8 x --max-body-bytes)")
	fs.IntVar(&s.MaxConnections, "max-connections", d.MaxConnections, "most open connections of the ingest API, WebSockets included; past it 503")
	fs.IntVar(&s.MaxConnectionsPerIP, "max-connections-per-ip", d.MaxConnectionsPerIP, "most open connections per client address; past it 429 (0: off; leave off behind a load balancer)")
	s.MaxBufferedBytes = d.MaxBufferedBytes
	fs.Var((*bytesValue)(&s.MaxBufferedBytes), "max-buffered-bytes", "ingest producer buffer `size`; a full buffer answers 503")
	fs.IntVar(&s.IdempotencyKeys, "idempotency-keys", d.IdempotencyKeys, "most Idempotency-Keys ingest remembers to answer 422 to a key reused with another body")
	fs.DurationVar(&s.IdempotencyTTL, "idempotency-ttl", d.IdempotencyTTL, "how long ingest remembers an Idempotency-Key")
	fs.DurationVar(&s.TxnTimeout, "txn-timeout", d.TxnTimeout, "transaction timeout of transactional stages (MSK allows at most 15m)")
	fs.DurationVar(&s.GroupSessionTimeout, "group-session-timeout", d.GroupSessionTimeout, "session timeout of the process and sink consumer groups: how long a crashed instance that does not come back under its --instance-id holds its partitions")
	fs.StringVar(&s.GroupProtocol, "group-protocol", d.GroupProtocol, "consumer-group `protocol` of the process and sink stages: classic or consumer (KIP-848, Kafka 4.0+)")
	fs.IntVar(&s.TxnMaxRecords, "txn-max-records", d.TxnMaxRecords, "most records in one transaction")
	fs.DurationVar(&s.TxnMaxTime, "txn-max-time", d.TxnMaxTime, "longest time one transaction collects records")
	fs.DurationVar(&s.AggCommitInterval, "agg-commit-interval", d.AggCommitInterval, "longest time a repartition or aggregate stage transaction stays open while records keep arriving (0: commit as soon as nothing more is buffered)")
	fs.DurationVar(&s.IdleAdvance, "idle-advance", d.IdleAdvance, "advance a caught-up, quiet source partition's watermark with the wall clock after this long (0: off)")
	fs.StringVar(&s.LogLevel, "log-level", d.LogLevel, "log `level`: debug, info, warn or error")
	fs.StringVar(&s.LogFormat, "log-format", d.LogFormat, "log `format`: text or json (one object per line)")
	s.Security.BindFlags(fs)
	s.API.BindFlags(fs)
	s.Sink.BindFlags(fs)
	s.Registry.BindFlags(fs)
	s.State.BindFlags(fs)
}

// EnvName returns the environment variable read for the flag called name:
// "ack-timeout" -> "SLUICE_ACK_TIMEOUT".
func EnvName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// ApplyEnv sets every flag of fs that was not given on the command line from its
// SLUICE_<FLAG_IN_UPPER_SNAKE> variable, when lookup (os.LookupEnv in production) finds
// one; an explicit flag always wins. Call it after fs.Parse. It covers every flag on fs,
// including ones the caller registered itself. Errors name the variable but not its value,
// which may be a secret; all bad variables are reported together.
func ApplyEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		env := EnvName(f.Name)
		val, ok := lookup(env)
		if !ok {
			return
		}
		if err := fs.Set(f.Name, val); err != nil {
			errs = append(errs, fmt.Errorf("%s: invalid value for --%s: %w", env, f.Name, err))
		}
	})
	return errors.Join(errs...)
}
