package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/service"
)

// Platform is the production pipeline running in this process: ingest API and every
// processor stage (clean, retry, and unless clean-only the aggregations) on kfake or an external broker, with an
// in-process schema registry. Authentication is off and it listens on loopback only.
type Platform struct {
	// URL is the ingest API's base URL.
	URL string
	// Brokers are the brokers the pipeline uses.
	Brokers []string
	// Pipeline is the pipeline file the platform runs (the built-in one).
	Pipeline *config.Pipeline

	reg *prometheus.Registry
	emb *service.Embedded
	run *service.Platform
	// stateDir is the temporary state directory Close removes ("" in memory).
	stateDir string
}

// StartPlatform starts the pipeline. brokers empty means an in-process kfake broker;
// instance names the processor's transactional ids (unique per run on a shared broker);
// cleanOnly leaves out the aggregation stages (ingest, clean and retry only);
// idempotentIngest makes ingest write without transactions (service.Deps.IdempotentIngest);
// stateBackend is pebble (in a temporary directory Close removes) or memory.
func StartPlatform(ctx context.Context, brokers []string, instance string, cleanOnly, idempotentIngest bool, stateBackend string, log *slog.Logger) (*Platform, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	emb, err := service.StartEmbedded(service.EmbeddedOptions{})
	if err != nil {
		return nil, err
	}
	p := &Platform{emb: emb, Pipeline: config.Default(), Brokers: brokers}
	if len(p.Brokers) == 0 {
		p.Brokers = emb.Brokers()
	}
	svc := config.DefaultService()
	svc.Brokers = p.Brokers
	svc.RegistryURL = emb.RegistryURL()
	svc.HTTPAddr = "127.0.0.1:0"
	svc.InstanceID = instance
	svc.API.AuthDisabled = true
	svc.IdleAdvance = 10 * time.Second // as sluice dev: the last windows close when traffic stops
	svc.State.Backend = stateBackend
	if stateBackend != config.StateBackendMemory {
		dir, err := os.MkdirTemp("", "sluice-bench-state-*")
		if err != nil {
			_ = emb.Close()
			return nil, fmt.Errorf("bench: state directory: %w", err)
		}
		p.stateDir, svc.State.Dir = dir, dir
	}
	started := false
	defer func() {
		if !started && p.stateDir != "" {
			_ = os.RemoveAll(p.stateDir)
		}
	}()

	reg := prometheus.NewRegistry()
	d, sreg, err := service.Setup(ctx, svc, p.Pipeline, kafka.Config{Brokers: svc.Brokers}, log, reg)
	if err != nil {
		_ = emb.Close()
		return nil, fmt.Errorf("bench: setup: %w", err)
	}
	d.ClientMetrics = reg
	d.IdempotentIngest = idempotentIngest
	ln, err := net.Listen("tcp", svc.HTTPAddr)
	if err != nil {
		_ = emb.Close()
		return nil, fmt.Errorf("bench: listen: %w", err)
	}
	kind := service.FullProcessor
	if cleanOnly {
		kind = service.CleanProcessor
	}
	run, err := service.StartPlatform(ctx, d, sreg, service.PlatformOptions{Listener: ln, Processor: kind})
	if err != nil {
		ln.Close()
		_ = emb.Close()
		return nil, err
	}
	p.run, p.reg = run, reg
	p.URL = "http://" + run.Ingest.Addr()
	started = true
	return p, nil
}

// Close stops the API, drains the processor (service.Platform.Close) and stops the
// embedded parts.
func (p *Platform) Close() error {
	err := errors.Join(p.run.Close(), p.emb.Close())
	if p.stateDir != "" {
		err = errors.Join(err, os.RemoveAll(p.stateDir))
	}
	return err
}

// StageTxns are one stage's committed transactions and the records it consumed in them.
type StageTxns struct {
	Txns          int64   `json:"txns"`
	Records       int64   `json:"records"`
	RecordsPerTxn float64 `json:"records_per_txn"`
}

// Transactions reads the processor's totals so far by stage, from its metrics
// (sluice_stage_transactions_total{result="commit"}, sluice_stage_records_in_total).
func (p *Platform) Transactions() map[string]StageTxns {
	mfs, err := p.reg.Gather()
	if err != nil {
		return nil
	}
	out := map[string]StageTxns{}
	for _, mf := range mfs {
		name := mf.GetName()
		if name != "sluice_stage_transactions_total" && name != "sluice_stage_records_in_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var stage, result string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "stage":
					stage = l.GetValue()
				case "result":
					result = l.GetValue()
				}
			}
			st := out[stage]
			v := int64(m.GetCounter().GetValue())
			if name == "sluice_stage_records_in_total" {
				st.Records += v
			} else if result == "commit" {
				st.Txns += v
			}
			out[stage] = st
		}
	}
	return out
}

// txnDelta is what happened between two readings of Transactions.
func txnDelta(before, after map[string]StageTxns) map[string]StageTxns {
	out := map[string]StageTxns{}
	for stage, a := range after {
		b := before[stage]
		d := StageTxns{Txns: a.Txns - b.Txns, Records: a.Records - b.Records}
		if d.Txns > 0 {
			d.RecordsPerTxn = math.Round(float64(d.Records)/float64(d.Txns)*10) / 10
		}
		out[stage] = d
	}
	return out
}
