package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/console"
	"github.com/sluicehq/sluice/pipeline/service"
)

// consoleCmd is `sluice console`: the operator console (docs/CONSOLE.md) against a
// running pipeline: its Kafka, its registry and its processes' /metrics.
func consoleCmd(fs *flag.FlagSet, svc *config.Service, out io.Writer) func(context.Context, *slog.Logger) error {
	addr := fs.String("console-addr", console.DefaultAddr, "console listen `address`; beyond loopback every request needs a JWT with scope admin (the --jwt-* flags of ingest)")
	metrics := fs.String("metrics-url", "", "comma-separated /metrics `URLs` of the processor, ingest and sink (rates, stream-time lag, watermarks)")
	return func(ctx context.Context, log *slog.Logger) error {
		p, err := loadPipeline(svc)
		if err != nil {
			return err
		}
		kc, err := kafkaConfig(ctx, svc, log)
		if err != nil {
			return err
		}
		var urls []string
		for u := range strings.SplitSeq(*metrics, ",") {
			if u = strings.TrimSpace(u); u != "" {
				urls = append(urls, u)
			}
		}
		o, v, err := console.ServiceOptions(*svc, p, kc, service.Groups(p), *addr, urls, log.With("service", "console"))
		if err != nil {
			return err
		}
		if v != nil {
			defer v.Close()
		}
		return console.ListenAndServe(ctx, *addr, o, func(a string) {
			fmt.Fprintf(out, "sluice console on http://%s\n", a)
		})
	}
}
