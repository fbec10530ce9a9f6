package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// MaxTxnTimeout is the largest transaction timeout Sluice accepts: MSK's cap on
// transaction.max.timeout.ms. The stages also check the broker's own value at start-up.
const MaxTxnTimeout = 15 * time.Minute

// DefaultAggCommitInterval is the default of Service.AggCommitInterval.
const DefaultAggCommitInterval = 100 * time.Millisecond

// DefaultGroupSessionTimeout is the default of Service.GroupSessionTimeout. Kafka's is
// 45 s; members heartbeat from a background goroutine every fifth of it (a long batch
// does not delay them), so 10 s still tolerates four lost heartbeats while the partitions
// of a crashed instance that is replaced under a new id move four times sooner.
const DefaultGroupSessionTimeout = 10 * time.Second

// The values of Service.GroupProtocol.
const (
	// GroupProtocolClassic is the JoinGroup/SyncGroup protocol with client-side
	// assignment (the default).
	GroupProtocolClassic = "classic"
	// GroupProtocolConsumer is KIP-848's broker-driven protocol (Kafka 4.0+).
	GroupProtocolConsumer = "consumer"
)

// Validate checks s and returns every problem at once (errors.Join), each naming the flag,
// for example "--ack-timeout: must be > 0 (got 0s)".
func (s *Service) Validate() error {
	var errs []error
	add := func(flagName, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flagName, fmt.Sprintf(format, args...)))
	}
	if len(s.Brokers) == 0 {
		add("brokers", "must list at least one host:port")
	}
	for _, b := range s.Brokers {
		if err := checkHostPort(b, true); err != nil {
			add("brokers", "%q: %v", b, err)
		}
	}
	if u, err := url.Parse(s.RegistryURL); err != nil {
		add("registry-url", "%v", err)
	} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("registry-url", "must be an http:// or https:// URL with a host (got %q)", s.RegistryURL)
	}
	if err := checkHostPort(s.HTTPAddr, false); err != nil {
		add("http-addr", "%q: %v", s.HTTPAddr, err)
	}
	switch {
	case s.InstanceID == "":
		add("instance-id", "must not be empty")
	case strings.IndexFunc(s.InstanceID, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0:
		add("instance-id", "must not contain spaces or control characters (got %q)", s.InstanceID)
	}
	if s.MaxBodyBytes <= 0 {
		add("max-body-bytes", "must be > 0 (got %d)", s.MaxBodyBytes)
	}
	if s.MaxInflightBytes < 0 || (s.MaxInflightBytes > 0 && s.MaxInflightBytes < 2*s.MaxBodyBytes) {
		add("max-inflight-bytes", "must be 0 (8 x --max-body-bytes) or >= 2 x --max-body-bytes = %d (got %d)",
			2*s.MaxBodyBytes, s.MaxInflightBytes)
	}
	if s.MaxConnections <= 0 {
		add("max-connections", "must be > 0 (got %d)", s.MaxConnections)
	}
	if s.MaxConnectionsPerIP < 0 {
		add("max-connections-per-ip", "must be >= 0 (got %d)", s.MaxConnectionsPerIP)
	}
	if s.AckTimeout <= 0 {
		add("ack-timeout", "must be > 0 (got %s)", s.AckTimeout)
	}
	if s.MaxFuture <= 0 {
		add("max-future", "must be > 0 (got %s)", s.MaxFuture)
	}
	if s.MaxBufferedBytes <= 0 {
		add("max-buffered-bytes", "must be > 0 (got %d)", s.MaxBufferedBytes)
	}
	if s.IdempotencyKeys <= 0 {
		add("idempotency-keys", "must be > 0 (got %d)", s.IdempotencyKeys)
	}
	if s.IdempotencyTTL <= 0 {
		add("idempotency-ttl", "must be > 0 (got %s)", s.IdempotencyTTL)
	}
	switch {
	case s.TxnTimeout < time.Millisecond:
		add("txn-timeout", "must be >= 1ms (got %s)", s.TxnTimeout)
	case s.TxnTimeout > MaxTxnTimeout:
		add("txn-timeout", "must be <= %s, the largest transaction.max.timeout.ms MSK allows (got %s)", MaxTxnTimeout, s.TxnTimeout)
	case s.TxnMaxTime > 0 && s.TxnMaxTime >= s.TxnTimeout:
		add("txn-max-time", "must be < --txn-timeout %s so a transaction can commit in time (got %s)", s.TxnTimeout, s.TxnMaxTime)
	}
	if s.GroupSessionTimeout < 100*time.Millisecond {
		add("group-session-timeout", "must be >= 100ms (got %s)", s.GroupSessionTimeout)
	}
	if s.GroupProtocol != GroupProtocolClassic && s.GroupProtocol != GroupProtocolConsumer {
		add("group-protocol", "must be %s or %s (got %q)", GroupProtocolClassic, GroupProtocolConsumer, s.GroupProtocol)
	}
	if s.TxnMaxRecords <= 0 {
		add("txn-max-records", "must be > 0 (got %d)", s.TxnMaxRecords)
	}
	if s.TxnMaxTime <= 0 {
		add("txn-max-time", "must be > 0 (got %s)", s.TxnMaxTime)
	}
	if s.AggCommitInterval < 0 || (s.TxnTimeout > 0 && s.AggCommitInterval >= s.TxnTimeout) {
		add("agg-commit-interval", "must be >= 0 and < --txn-timeout %s (got %s)", s.TxnTimeout, s.AggCommitInterval)
	}
	if _, err := parseLevel(s.LogLevel); err != nil {
		add("log-level", "%v", err)
	}
	if err := s.API.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := s.Sink.Validate(); err != nil {
		errs = append(errs, err)
	}
	switch s.LogFormat {
	case "", "text", "json":
	default:
		add("log-format", "must be text or json (got %q)", s.LogFormat)
	}
	if err := s.State.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := s.Registry.Validate(s.RegistryURL); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// SlogLevel returns LogLevel as a slog.Level; an invalid level (which Validate reports)
// reads as info.
func (s *Service) SlogLevel() slog.Level {
	l, err := parseLevel(s.LogLevel)
	if err != nil {
		return slog.LevelInfo
	}
	return l
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("must be debug, info, warn or error (got %q)", s)
}

// checkHostPort checks "host:port" with a numeric port in 1..65535; needHost also
// requires the host part (a listen address may leave it empty).
func checkHostPort(addr string, needHost bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("must be host:port")
	}
	if needHost && host == "" {
		return errors.New("must name a host")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 || (needHost && p == 0) {
		return fmt.Errorf("invalid port %q", port)
	}
	return nil
}
