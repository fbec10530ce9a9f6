package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/service"
)

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	_ = service.RegisterBuildInfo(reg) // a fresh registry: cannot collide
	return reg
}

func ingestCmd(_ *flag.FlagSet, svc *config.Service, _ io.Writer) func(context.Context, *slog.Logger) error {
	return func(ctx context.Context, log *slog.Logger) error {
		if err := svc.API.RequireAuth(); err != nil {
			return err
		}
		p, err := loadPipeline(svc)
		if err != nil {
			return err
		}
		d, _, err := service.Setup(ctx, *svc, p, kafka.Config{Brokers: svc.Brokers}, log, newRegistry())
		if err != nil {
			return err
		}
		d.ClientMetrics = d.Registry
		ln, err := net.Listen("tcp", svc.HTTPAddr)
		if err != nil {
			return err
		}
		pl, err := service.StartPlatform(ctx, d, nil, service.PlatformOptions{Listener: ln})
		if err != nil {
			ln.Close()
			return err
		}
		log.Info("ingest listening", "addr", pl.Ingest.Addr())
		<-ctx.Done()
		return pl.Close()
	}
}

func processCmd(_ *flag.FlagSet, svc *config.Service, _ io.Writer) func(context.Context, *slog.Logger) error {
	return func(ctx context.Context, log *slog.Logger) error {
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
		pl, err := service.StartPlatform(ctx, d, sreg, service.PlatformOptions{Processor: service.FullProcessor})
		if err != nil {
			return err
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
		log.Info("processor running", "instance", svc.InstanceID, "metrics", svc.HTTPAddr)
		return waitThenClose(ctx, pl)
	}
}

// waitThenClose runs pl until ctx ends or one of its parts stops by itself, then
// closes it and returns what Close returns.
func waitThenClose(ctx context.Context, pl *service.Platform) error {
	select {
	case <-ctx.Done():
	case <-pl.Done():
	}
	return pl.Close()
}

// serveMetrics serves metricsMux(reg) on addr (/metrics and /healthz of the process and
// sink services) until stop is called. A port already taken is an error now.
func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: metricsMux(reg)}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	return func() { _ = srv.Close() }, nil
}

func metricsMux(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	return mux
}

// kafkaConfig is how every subcommand reaches Kafka: the brokers and security of svc,
// checked, and the brokers pinged so that a wrong password or address fails now with a
// clear message.
func kafkaConfig(ctx context.Context, svc *config.Service, log *slog.Logger) (kafka.Config, error) {
	kc := kafka.Config{Brokers: svc.Brokers, Logger: log, Security: kafka.SecurityFrom(svc.Security)}
	if err := kc.Security.Validate(); err != nil {
		return kc, err
	}
	if err := kafka.Ping(ctx, kc); err != nil {
		return kc, err
	}
	return kc, nil
}
