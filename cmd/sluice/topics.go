package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/kafka"
)

func topicsCmd(fs *flag.FlagSet, svc *config.Service, out io.Writer) func(context.Context, *slog.Logger) error {
	return func(ctx context.Context, log *slog.Logger) error {
		if fs.NArg() != 1 || (fs.Arg(0) != "create" && fs.Arg(0) != "describe") {
			return errors.New("usage: sluice topics [flags] create|describe")
		}
		p, err := loadPipeline(svc)
		if err != nil {
			return err
		}
		kc, err := kafkaConfig(ctx, svc, log)
		if err != nil {
			return err
		}
		cl, err := kgo.NewClient(kc.Opts()...)
		if err != nil {
			return err
		}
		adm := kadm.NewClient(cl)
		defer adm.Close()
		specs := kafka.TopicsFor(p)
		if fs.Arg(0) == "create" {
			if err := kafka.EnsureTopics(ctx, adm, specs); err != nil {
				return err
			}
		}
		names := make([]string, len(specs))
		for i, s := range specs {
			names[i] = s.Name
		}
		td, err := adm.ListTopics(ctx, names...)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tCOMPACTED\tSTATUS")
		for _, s := range specs {
			status := "missing"
			parts := "-"
			if d, ok := td[s.Name]; ok && d.Err == nil {
				status = "ok"
				parts = fmt.Sprint(len(d.Partitions))
			}
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\n", s.Name, parts, s.Compacted, status)
		}
		return tw.Flush()
	}
}
