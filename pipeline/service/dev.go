package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/console"
	"github.com/sluicehq/sluice/pipeline/gen"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/process"
)

// DevOptions configure `sluice dev`.
type DevOptions struct {
	Service  config.Service
	Pipeline *config.Pipeline
	// KafkaPort is the embedded broker's port on 127.0.0.1. Default 9092.
	KafkaPort int
	// Brokers, if set, are an external Kafka cluster: dev runs its services there with
	// Service.Security and starts no broker of its own (KafkaPort is unused). The
	// schema registry is still the embedded one.
	Brokers []string
	// RegistryAddr is the embedded registry's address. Default 127.0.0.1:8081.
	RegistryAddr string
	// GenerateRate, if > 0, posts that many synthetic events per second to the API.
	GenerateRate float64
	// Seed seeds the generators.
	Seed   uint64
	Logger *slog.Logger
	// Ready, if set, is called with the addresses once everything runs.
	Ready func(brokers []string, registryURL, httpAddr string)
	// Transforms are the clean stage's user transforms, by raw topic (see
	// process.Transform and examples/enrich).
	Transforms map[string]process.Transform
	// Warehouse is the DuckDB file the sink writes clean events and window results to;
	// empty keeps it in memory. Service.Sink.Warehouse = snowflake writes to Snowflake
	// instead. Service.Sink.QueryAddr answers `sluice query` on a DuckDB warehouse.
	Warehouse string
	// ConsoleAddr is where the operator console listens (docs/CONSOLE.md); empty: no
	// console. Beyond loopback it needs Service.API's JWT settings (tokens with scope
	// admin).
	ConsoleAddr string
}

// Dev runs the whole platform in one process until ctx ends, then drains: the API stops
// accepting and finishes in-flight requests, the processor ends its transaction, and the
// embedded parts stop.
func Dev(ctx context.Context, o DevOptions) error {
	if o.KafkaPort == 0 {
		o.KafkaPort = 9092
	}
	if o.RegistryAddr == "" {
		o.RegistryAddr = "127.0.0.1:8081"
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	emb, err := StartEmbedded(EmbeddedOptions{KafkaPort: o.KafkaPort, RegistryAddr: o.RegistryAddr, NoKafka: len(o.Brokers) > 0})
	if err != nil {
		return err
	}
	defer emb.Close()
	svc := o.Service
	if svc.IdleAdvance == 0 {
		// Let the last windows close when traffic stops.
		svc.IdleAdvance = 10 * time.Second
	}
	if len(o.Brokers) > 0 {
		svc.Brokers = o.Brokers
	} else {
		svc.Brokers = emb.Brokers()
		svc.Security = config.KafkaSecurity{} // the embedded broker speaks plaintext
	}
	svc.RegistryURL = emb.RegistryURL()
	svc.Registry.LocalCheck = true // srfake stores modes but does not enforce them
	if svc.State.Dir == "" && (o.Pipeline == nil || o.Pipeline.State.Dir == "") {
		// The production backend, in a directory of its own that goes with dev.
		dir, err := os.MkdirTemp("", "sluice-dev-state-*")
		if err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
		defer os.RemoveAll(dir)
		svc.State.Dir = dir
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d, sreg, err := Setup(ctx, svc, o.Pipeline, kafka.Config{Brokers: svc.Brokers}, log, reg)
	if err != nil {
		return err
	}
	d.Transforms = o.Transforms
	d.ClientMetrics = reg
	if err := RegisterBuildInfo(reg); err != nil {
		return err
	}
	wc := svc.Sink
	if wc.Warehouse != config.WarehouseSnowflake {
		wc.Warehouse, wc.DuckDBPath = config.WarehouseDuckDB, o.Warehouse
	}
	wh, err := OpenWarehouse(ctx, wc)
	if err != nil {
		return fmt.Errorf("warehouse: %w", err)
	}
	defer wh.Close() // after the platform closed (defers run last first)
	ln, err := net.Listen("tcp", svc.HTTPAddr)
	if err != nil {
		return fmt.Errorf("ingest listen %s: %w", svc.HTTPAddr, err)
	}
	p, err := StartPlatform(ctx, d, sreg, PlatformOptions{Listener: ln, Processor: FullProcessor, Warehouse: wh,
		Metrics: process.NewMetrics(reg)})
	if err != nil {
		ln.Close()
		return err
	}
	stopMon, err := StartMonitor(ctx, d, 0)
	if err != nil {
		return errors.Join(err, p.Close())
	}
	defer stopMon()
	if wc.Warehouse == config.WarehouseDuckDB {
		// A second dev on the machine (or a test) may hold the address: dev runs on
		// without answering queries rather than not at all.
		if stopQuery, err := StartQueryServer(svc.Sink.QueryAddr, svc.Sink.QueryTokenFile, wh, log); err != nil {
			log.Warn("sluice query will not reach this dev", "err", err)
		} else {
			defer stopQuery()
		}
	}
	if o.ConsoleAddr != "" {
		co, v, err := console.ServiceOptions(svc, o.Pipeline, kafka.Config{Brokers: svc.Brokers, Security: kafka.SecurityFrom(svc.Security)}, Groups(o.Pipeline),
			o.ConsoleAddr, []string{"http://" + localAddr(ln) + "/metrics"}, log.With("service", "console"))
		if v != nil {
			defer v.Close() // after the console stops (defers run last first)
		}
		if err == nil {
			var stopConsole func()
			if _, stopConsole, err = console.Start(context.WithoutCancel(ctx), o.ConsoleAddr, co); err == nil {
				defer stopConsole()
			}
		}
		if err != nil {
			// Like the query server: a second dev on the machine may hold the port.
			log.Warn("the console will not run", "err", err)
		}
	}

	httpAddr := ln.Addr().String()
	log.Info("sluice dev running", "kafka", svc.Brokers, "registry", svc.RegistryURL, "http", httpAddr)
	if o.Ready != nil {
		o.Ready(svc.Brokers, svc.RegistryURL, httpAddr)
	}
	genCtx, stopGen := context.WithCancel(ctx)
	defer stopGen()
	var gen sync.WaitGroup
	var genErr error
	if o.GenerateRate > 0 {
		gen.Go(func() { genErr = generate(genCtx, "http://"+localAddr(ln), o) })
	}

	select {
	case <-ctx.Done():
	case <-p.Done():
		log.Error("a part of the platform stopped: shutting down")
	}
	log.Info("draining")
	stopGen()
	gen.Wait()
	if errors.Is(genErr, context.Canceled) {
		genErr = nil
	}
	return errors.Join(p.Close(), genErr)
}

func generate(ctx context.Context, base string, o DevOptions) error {
	gens := make(map[string]*gen.Generator)
	for i, t := range o.Pipeline.Topics {
		g, err := gen.New(t.Name, gen.Options{Seed: o.Seed + uint64(i)})
		if err != nil {
			continue // a user-defined topic without a generator
		}
		gens[t.Name] = g
	}
	batch := max(1, int(o.GenerateRate/20))
	_, err := gen.Run(ctx, &gen.HTTPTarget{BaseURL: base}, gens, o.GenerateRate, batch, 0, time.Now)
	return err
}

// localAddr turns a wildcard listen address into one a local client can dial.
func localAddr(ln net.Listener) string {
	a := ln.Addr().(*net.TCPAddr)
	if a.IP.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(a.Port))
	}
	return a.String()
}
