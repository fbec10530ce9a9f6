package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/service"
)

func devCmd(fs *flag.FlagSet, svc *config.Service, out io.Writer) func(context.Context, *slog.Logger) error {
	kafkaPort := fs.Int("kafka-port", 9092, "embedded Kafka broker `port` on 127.0.0.1")
	regAddr := fs.String("registry-addr", "127.0.0.1:8081", "embedded schema registry listen `address`")
	rate := fs.Float64("generate", 0, "post this many synthetic `events/s` to the API (0: none)")
	seed := fs.Uint64("seed", 1, "generator seed")
	return func(ctx context.Context, log *slog.Logger) error {
		p, err := loadPipeline(svc)
		if err != nil {
			return err
		}
		return service.Dev(ctx, service.DevOptions{
			Service:      *svc,
			Pipeline:     p,
			KafkaPort:    *kafkaPort,
			RegistryAddr: *regAddr,
			GenerateRate: *rate,
			Seed:         *seed,
			Logger:       log,
			Ready: func(brokers []string, reg, http string) {
				fmt.Fprintf(out, "sluice dev is up\n  kafka     %v   (kcat -b %s -L)\n  registry  %s\n  api       http://%s/api/v1/events/{topic}\n  metrics   http://%s/metrics\nCtrl-C drains and exits.\n",
					brokers, brokers[0], reg, http, http)
			},
		})
	}
}
