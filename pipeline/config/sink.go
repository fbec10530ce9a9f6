package config

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"
)

// Warehouse kinds (--warehouse).
const (
	WarehouseDuckDB    = "duckdb"
	WarehouseSnowflake = "snowflake"
)

// Sink defaults (sluice sink).
const (
	DefaultDuckDBPath         = "sluice.duckdb"
	DefaultSinkFlushRows      = 5000
	DefaultSinkFlushBytes     = 4 << 20
	DefaultSinkFlushInterval  = time.Second
	DefaultSnowflakeRetries   = 0
	DefaultQueryAddr          = "127.0.0.1:8082"
	DefaultSnowflakeProtocol  = "https"
	snowflakePassphraseEnvVar = EnvPrefix + "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"
)

// SinkConfig is the warehouse sink's configuration (--warehouse, --duckdb-path,
// --sink-flush-*, --snowflake-*). The secrets (password, private key, passphrase) are
// best given by environment (SLUICE_SNOWFLAKE_PASSWORD, SLUICE_SNOWFLAKE_PRIVATE_KEY,
// SLUICE_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE): command lines are visible to other users.
type SinkConfig struct {
	// Warehouse is duckdb (the embedded default) or snowflake.
	Warehouse string
	// DuckDBPath is the DuckDB database file; empty keeps it in memory (sluice dev only).
	DuckDBPath string
	// FlushRows, FlushBytes and FlushInterval bound one partition's buffer: it is
	// written when any is reached, the interval on a timer even when no record arrives.
	FlushRows     int
	FlushBytes    int64
	FlushInterval time.Duration
	// QueryAddr is where sluice dev and sluice sink (duckdb) answer `sluice query`
	// (POST /v1/query); empty turns it off. Default 127.0.0.1:8082: it answers callers
	// on loopback only, and only those that present the query token (QueryTokenFile).
	QueryAddr string
	// QueryTokenFile is where the process answering queries writes its random per-process
	// token (mode 0600, removed at exit) and where `sluice query` reads it. Empty (the
	// default): query-<port>.token in the sluice directory of the user's configuration
	// directory (service.QueryTokenPath).
	QueryTokenFile string
	// Snowflake is where and as whom to write when Warehouse is snowflake.
	Snowflake SnowflakeSettings
}

// SnowflakeSettings are the --snowflake-* flags (see sink.SnowflakeConfig).
type SnowflakeSettings struct {
	Account, User, Role, Warehouse, Database, Schema string
	// Password, or PrivateKey (PKCS#8 or PKCS#1 PEM text) or PrivateKeyFile, authenticates.
	Password       string
	PrivateKey     string
	PrivateKeyFile string
	// PrivateKeyPassphrase decrypts an encrypted private key.
	PrivateKeyPassphrase string
	// Host, Port and Protocol override the account's endpoint (a local test server).
	Host     string
	Port     int
	Protocol string
	// MaxRetries bounds gosnowflake's retries of one request (0: its default).
	MaxRetries int
}

// BindFlags registers the sink flags on fs with their defaults.
func (c *SinkConfig) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Warehouse, "warehouse", WarehouseDuckDB, "sink `warehouse`: duckdb (embedded) or snowflake")
	fs.StringVar(&c.DuckDBPath, "duckdb-path", DefaultDuckDBPath, "DuckDB database `file` of the duckdb warehouse (sluice dev keeps it in memory unless this is given)")
	fs.IntVar(&c.FlushRows, "sink-flush-rows", DefaultSinkFlushRows, "write a partition's buffered rows at this many")
	c.FlushBytes = DefaultSinkFlushBytes
	fs.Var((*bytesValue)(&c.FlushBytes), "sink-flush-bytes", "write a partition's buffered rows at this many record `bytes`")
	fs.DurationVar(&c.FlushInterval, "sink-flush-interval", DefaultSinkFlushInterval, "write a partition's buffered rows this long after the first arrived, on a timer")
	fs.StringVar(&c.QueryAddr, "query-addr", DefaultQueryAddr, "`address` where sluice dev and a duckdb sink answer `sluice query` (loopback callers with the query token only; empty: off)")
	fs.StringVar(&c.QueryTokenFile, "query-token-file", "", "`file` of the query token: written (mode 0600) by the process answering queries, read by sluice query (default: query-<port>.token in the sluice directory of the user's config directory)")
	s := &c.Snowflake
	fs.StringVar(&s.Account, "snowflake-account", "", "Snowflake account `identifier` (orgname-accountname)")
	fs.StringVar(&s.User, "snowflake-user", "", "Snowflake login `name`")
	fs.StringVar(&s.Role, "snowflake-role", "", "Snowflake `role` (default: the user's default role)")
	fs.StringVar(&s.Warehouse, "snowflake-warehouse", "", "Snowflake virtual `warehouse` that runs the sink's statements")
	fs.StringVar(&s.Database, "snowflake-database", "", "Snowflake `database` of the sink's tables")
	fs.StringVar(&s.Schema, "snowflake-schema", "", "Snowflake `schema` of the sink's tables")
	fs.StringVar(&s.Password, "snowflake-password", "", "Snowflake password (prefer SLUICE_SNOWFLAKE_PASSWORD; key-pair auth is better still)")
	fs.StringVar(&s.PrivateKey, "snowflake-private-key", "", "RSA private key as PEM text, PKCS#8 (optionally encrypted) or PKCS#1 (prefer SLUICE_SNOWFLAKE_PRIVATE_KEY)")
	fs.StringVar(&s.PrivateKeyFile, "snowflake-private-key-file", "", "`file` holding the RSA private key as PEM")
	fs.StringVar(&s.PrivateKeyPassphrase, "snowflake-private-key-passphrase", "", "passphrase of an encrypted private key (prefer "+snowflakePassphraseEnvVar+")")
	fs.StringVar(&s.Host, "snowflake-host", "", "override the account's `host` (a local Snowflake-protocol server for tests)")
	fs.IntVar(&s.Port, "snowflake-port", 0, "override the account's `port`")
	fs.StringVar(&s.Protocol, "snowflake-protocol", "", "override the protocol: https or http (local test servers only)")
	fs.IntVar(&s.MaxRetries, "snowflake-max-retries", DefaultSnowflakeRetries, "retries of one Snowflake request (0: the driver's default)")
}

// Validate returns every problem of the sink flags at once, each naming its flag.
func (c *SinkConfig) Validate() error {
	var errs []error
	add := func(flagName, format string, args ...any) {
		errs = append(errs, fmt.Errorf("--%s: %s", flagName, fmt.Sprintf(format, args...)))
	}
	switch c.Warehouse {
	case WarehouseDuckDB, WarehouseSnowflake:
	default:
		add("warehouse", "must be duckdb or snowflake (got %q)", c.Warehouse)
	}
	if c.FlushRows <= 0 {
		add("sink-flush-rows", "must be > 0 (got %d)", c.FlushRows)
	}
	if c.FlushBytes <= 0 {
		add("sink-flush-bytes", "must be > 0 (got %d)", c.FlushBytes)
	}
	if c.FlushInterval <= 0 {
		add("sink-flush-interval", "must be > 0 (got %s)", c.FlushInterval)
	}
	if c.QueryAddr != "" {
		if err := checkHostPort(c.QueryAddr, false); err != nil {
			add("query-addr", "%q: %v", c.QueryAddr, err)
		}
	}
	s := c.Snowflake
	if s.PrivateKey != "" && s.PrivateKeyFile != "" {
		add("snowflake-private-key-file", "set the key or the key file, not both")
	}
	if s.Port < 0 || s.Port > 65535 {
		add("snowflake-port", "must be 0..65535 (got %d)", s.Port)
	}
	switch strings.ToLower(s.Protocol) {
	case "", "https", "http":
	default:
		add("snowflake-protocol", "must be https or http (got %q)", s.Protocol)
	}
	if s.MaxRetries < 0 {
		add("snowflake-max-retries", "must be >= 0 (got %d)", s.MaxRetries)
	}
	return errors.Join(errs...)
}
