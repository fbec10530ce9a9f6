package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/console"
	"github.com/sluicehq/sluice/pipeline/service"
)

func devCmd(fs *flag.FlagSet, svc *config.Service, out io.Writer) func(context.Context, *slog.Logger) error {
	kafkaPort := fs.Int("kafka-port", 9092, "embedded Kafka broker `port` on 127.0.0.1 (not with --brokers)")
	regAddr := fs.String("registry-addr", "127.0.0.1:8081", "embedded schema registry listen `address`")
	rate := fs.Float64("generate", 0, "post this many synthetic `events/s` to the API (0: none)")
	seed := fs.Uint64("seed", 1, "generator seed")
	consoleAddr := fs.String("console-addr", console.DefaultAddr, "operator console listen `address` (empty: none); beyond loopback it needs the --jwt-* flags and tokens with scope admin")
	return func(ctx context.Context, log *slog.Logger) error {
		brokers, err := devBrokers(fs, svc)
		if err != nil {
			return err
		}
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
			Brokers:      brokers,
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

// devBrokers returns the external brokers dev runs on: --brokers (or SLUICE_BROKERS) if
// given, else none (dev starts its own broker on --kafka-port). The two exclude each
// other, and the Kafka TLS and SASL flags need --brokers: the embedded broker speaks
// plaintext only.
func devBrokers(fs *flag.FlagSet, svc *config.Service) ([]string, error) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if given["brokers"] {
		if given["kafka-port"] {
			return nil, errors.New("--brokers and --kafka-port: dev either runs on the brokers given or starts its own on --kafka-port, not both")
		}
		return svc.Brokers, nil
	}
	var sec []string
	fs.Visit(func(f *flag.Flag) {
		if strings.HasPrefix(f.Name, "kafka-") && f.Name != "kafka-port" {
			sec = append(sec, "--"+f.Name)
		}
	})
	if len(sec) > 0 {
		return nil, fmt.Errorf("%s: only with --brokers (the embedded broker speaks plaintext)", strings.Join(sec, ", "))
	}
	return nil, nil
}
