package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/console"
	"github.com/sluicehq/sluice/pipeline/service"
)

func devCmd(fs *flag.FlagSet, svc *config.Service, out io.Writer) func(context.Context, *slog.Logger) error {
	kafkaPort := fs.Int("kafka-port", 9092, "embedded Kafka broker `port` on 127.0.0.1")
	regAddr := fs.String("registry-addr", "127.0.0.1:8081", "embedded schema registry listen `address`")
	rate := fs.Float64("generate", 0, "post this many synthetic `events/s` to the API (0: none)")
	seed := fs.Uint64("seed", 1, "generator seed")
	consoleAddr := fs.String("console-addr", console.DefaultAddr, "operator console listen `address` (empty: none); beyond loopback it needs the --jwt-* flags and tokens with scope admin")
	return func(ctx context.Context, log *slog.Logger) error {
		p, err := loadPipeline(svc)
		if err != nil {
			return err
		}
		warehouse := "" // in memory, unless --duckdb-path names a file
		if pathGiven(fs) {
			warehouse = svc.Sink.DuckDBPath
		}
		return service.Dev(ctx, service.DevOptions{
			Warehouse:    warehouse,
			Service:      *svc,
			Pipeline:     p,
			KafkaPort:    *kafkaPort,
			RegistryAddr: *regAddr,
			GenerateRate: *rate,
			Seed:         *seed,
			ConsoleAddr:  *consoleAddr,
			Logger:       log,
			Ready: func(brokers []string, reg, http string) {
				fmt.Fprintf(out, "sluice dev is up\n  kafka     %v   (kcat -b %s -L)\n  registry  %s\n  api       http://%s/api/v1/events/{topic}\n  docs      http://%s/docs\n  console   %s\n  metrics   http://%s/metrics\n  query     sluice query --json 'select count(*) as n from PURCHASES'   (%s)\nCtrl-C drains and exits.\n",
					brokers, brokers[0], reg, http, http, consoleWhere(*consoleAddr), http, queryWhere(svc.Sink))
			},
		})
	}
}

// consoleWhere says where the console of dev answers.
func consoleWhere(addr string) string {
	if addr == "" {
		return "off: --console-addr is empty"
	}
	return "http://" + addr + "   (docs/CONSOLE.md)"
}

// queryWhere says where `sluice query` reaches dev's warehouse.
func queryWhere(c config.SinkConfig) string {
	if c.Warehouse == config.WarehouseSnowflake {
		return "the warehouse is Snowflake: query it there"
	}
	if c.QueryAddr == "" {
		return "off: --query-addr is empty"
	}
	return "answered at " + c.QueryAddr
}
