package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/service"
	"github.com/sluicehq/sluice/pipeline/sink"
)

// sinkCmd is `sluice sink`: the warehouse sink, every <topic>.clean and agg.* into DuckDB
// or Snowflake, exactly once. --check only connects, checks privileges and exits.
func sinkCmd(fs *flag.FlagSet, svc *config.Service, out io.Writer) func(context.Context, *slog.Logger) error {
	check := fs.Bool("check", false, "connect to the warehouse, check the privileges the sink needs, print a verdict and exit (non-zero when it cannot work)")
	return func(ctx context.Context, log *slog.Logger) error {
		if *check {
			return checkWarehouse(ctx, svc.Sink, out)
		}
		p, err := loadPipeline(svc)
		if err != nil {
			return err
		}
		reg := newRegistry()
		d, sreg, err := service.Setup(ctx, *svc, p, kafka.Config{Brokers: svc.Brokers}, log, reg)
		if err != nil {
			return err
		}
		d.ClientMetrics = reg
		wh, err := service.OpenWarehouse(ctx, svc.Sink)
		if err != nil {
			return fmt.Errorf("warehouse: %w", err)
		}
		defer wh.Close()
		// The platform's metrics own sluice_end_to_end_latency_seconds{stage="sink"}.
		pl, err := service.StartPlatform(ctx, d, sreg, service.PlatformOptions{Warehouse: wh})
		if err != nil {
			return err
		}
		if svc.Sink.Warehouse == config.WarehouseDuckDB {
			stopQuery, err := service.StartQueryServer(svc.Sink.QueryAddr, svc.Sink.QueryTokenFile, wh, log)
			if err != nil {
				return errors.Join(err, pl.Close())
			}
			defer stopQuery()
		}
		stopMon, err := service.StartMonitor(ctx, d, 0)
		if err != nil {
			return errors.Join(err, pl.Close())
		}
		defer stopMon()
		stopMetrics, err := serveMetrics(svc.HTTPAddr, reg, log)
		if err != nil {
			return errors.Join(err, pl.Close())
		}
		defer stopMetrics()
		log.Info("sink running", "instance", svc.InstanceID, "warehouse", svc.Sink.Warehouse, "metrics", svc.HTTPAddr)
		return waitThenClose(ctx, pl)
	}
}

// checkWarehouse is `sluice sink --check`.
func checkWarehouse(ctx context.Context, c config.SinkConfig, out io.Writer) error {
	switch c.Warehouse {
	case config.WarehouseSnowflake:
		sc, err := service.SnowflakeConfig(c.Snowflake)
		if err != nil {
			return err
		}
		verdict, err := sink.CheckSnowflake(ctx, sc)
		fmt.Fprint(out, verdict)
		return err
	default:
		w, err := sink.OpenDuckDB(c.DuckDBPath)
		if err != nil {
			fmt.Fprintf(out, "FAIL  open DuckDB file %s: %v\n", c.DuckDBPath, err)
			return fmt.Errorf("the sink cannot use DuckDB file %s", c.DuckDBPath)
		}
		defer w.Close()
		if err := w.Migrate(ctx); err != nil {
			fmt.Fprintf(out, "FAIL  create the sink's tables in %s: %v\n", c.DuckDBPath, err)
			return fmt.Errorf("the sink cannot use DuckDB file %s", c.DuckDBPath)
		}
		fmt.Fprintf(out, "ok    DuckDB file %s opened for writing, sink tables in place\nverdict: the sink can write to DuckDB file %s\n", c.DuckDBPath, c.DuckDBPath)
		return nil
	}
}
