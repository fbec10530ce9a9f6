package service

import (
	"context"
	"fmt"
	"os"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/sink"
)

// OpenWarehouse opens the warehouse c names: the DuckDB file at c.DuckDBPath ("" keeps it
// in memory), or Snowflake with c.Snowflake. It does not migrate (NewSink does).
func OpenWarehouse(ctx context.Context, c config.SinkConfig) (*sink.SQLWarehouse, error) {
	switch c.Warehouse {
	case config.WarehouseSnowflake:
		sc, err := SnowflakeConfig(c.Snowflake)
		if err != nil {
			return nil, err
		}
		return sink.OpenSnowflake(ctx, sc)
	case config.WarehouseDuckDB, "":
		return sink.OpenDuckDB(c.DuckDBPath)
	}
	return nil, fmt.Errorf("--warehouse: unknown warehouse %q", c.Warehouse)
}

// SnowflakeConfig turns the --snowflake-* settings into the sink's configuration,
// reading the private key file if one is named, and validates it.
func SnowflakeConfig(s config.SnowflakeSettings) (sink.SnowflakeConfig, error) {
	key := []byte(s.PrivateKey)
	if s.PrivateKeyFile != "" {
		b, err := os.ReadFile(s.PrivateKeyFile)
		if err != nil {
			return sink.SnowflakeConfig{}, fmt.Errorf("--snowflake-private-key-file: %w", err)
		}
		key = b
	}
	sc := sink.SnowflakeConfig{
		Account: s.Account, User: s.User, Role: s.Role, Warehouse: s.Warehouse,
		Database: s.Database, Schema: s.Schema, Password: s.Password,
		PrivateKeyPEM: key, PrivateKeyPassphrase: s.PrivateKeyPassphrase,
		Host: s.Host, Port: s.Port, Protocol: s.Protocol, MaxRetryCount: s.MaxRetries,
	}
	if len(key) == 0 {
		sc.PrivateKeyPEM = nil
	}
	if err := sc.Validate(); err != nil {
		return sink.SnowflakeConfig{}, fmt.Errorf("snowflake warehouse: %w", err)
	}
	return sc, nil
}
