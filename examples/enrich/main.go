// Command enrich runs the whole Sluice platform in one process, like `sluice dev`, with a
// user transform registered in code: it stands for an enrichment service that answers
// slowly and sometimes not at all, so its failures show the retry path of
// docs/ERRORS.md (in-place attempts, the _sluice.retry.* topics, the circuit breaker,
// the dead-letter topic).
//
//	go run ./examples/enrich --fail 0.3 --kafka-port 19092
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/dlq"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/service"
)

// enricher adds a loyalty tier to purchases. It fails transiently with probability fail
// (a timeout), permanently for orders whose id starts with "bad-" (an unknown customer)
// and always while down is set.
type enricher struct {
	fail float64
	down atomic.Bool
}

func (e *enricher) Dependency() string { return "loyalty-service" }

func (e *enricher) Apply(_ context.Context, _ string, ev map[string]any) error {
	if e.down.Load() {
		return errors.New("loyalty-service: connection refused")
	}
	if id, _ := ev["order_id"].(string); strings.HasPrefix(id, "bad-") {
		return dlq.AsPermanent(fmt.Errorf("loyalty-service: no customer for order %s", id))
	}
	if rand.Float64() < e.fail {
		return errors.New("loyalty-service: timeout")
	}
	return nil
}

func main() {
	fs := flag.NewFlagSet("enrich", flag.ExitOnError)
	svc := config.DefaultService()
	svc.BindFlags(fs)
	fail := fs.Float64("fail", 0.3, "probability that one call of the transform fails transiently")
	kafkaPort := fs.Int("kafka-port", 9092, "embedded Kafka port on 127.0.0.1")
	regAddr := fs.String("registry-addr", "127.0.0.1:8081", "embedded schema registry address")
	_ = fs.Parse(os.Args[1:])
	if err := config.ApplyEnv(fs, os.LookupEnv); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if svc.HTTPAddr == ":8080" {
		svc.HTTPAddr = "127.0.0.1:8080"
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &enricher{fail: *fail}
	err := service.Dev(ctx, service.DevOptions{
		Service:      svc,
		Pipeline:     config.Default(),
		KafkaPort:    *kafkaPort,
		RegistryAddr: *regAddr,
		Logger:       log,
		// Registered explicitly: the transform of purchases.
		Transforms: map[string]process.Transform{"purchases": e},
	})
	if err != nil {
		log.Error("enrich", "err", err)
		os.Exit(1)
	}
}
