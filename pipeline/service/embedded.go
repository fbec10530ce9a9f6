package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// Embedded is an in-process Kafka-protocol broker (kfake) and a Confluent-compatible
// schema registry (srfake) served over HTTP: what `sluice dev` and the harness run on.
type Embedded struct {
	// Cluster is the broker; tests inject faults through it.
	Cluster *kfake.Cluster
	// Registry is the schema registry.
	Registry *srfake.Registry

	regSrv *http.Server
	regLn  net.Listener
}

// EmbeddedOptions place the embedded parts.
type EmbeddedOptions struct {
	// KafkaPort is the broker's port on 127.0.0.1; 0 picks a free one.
	KafkaPort int
	// RegistryAddr is the registry's listen address; "" or ":0" style picks a free port.
	RegistryAddr string
	// Partitions is the default partition count of auto-created topics. Default 3.
	Partitions int
	// MinSessionTimeout lowers the broker's minimum group session timeout (tests that
	// crash members want them gone fast). Zero: 6s, Kafka's default.
	MinSessionTimeout time.Duration
	// NoKafka starts the registry alone (sluice dev --brokers: the services run on an
	// external broker); Cluster is then nil and Brokers empty.
	NoKafka bool
}

// StartEmbedded starts the broker (unless o.NoKafka) and the registry.
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	if o.Partitions <= 0 {
		o.Partitions = 3
	}
	if o.RegistryAddr == "" {
		o.RegistryAddr = "127.0.0.1:0"
	}
	var c *kfake.Cluster
	if !o.NoKafka {
		opts := []kfake.Opt{
			kfake.NumBrokers(1),
			kfake.Ports(o.KafkaPort),
			kfake.DefaultNumPartitions(o.Partitions),
		}
		if o.MinSessionTimeout > 0 {
			opts = append(opts, kfake.GroupMinSessionTimeout(o.MinSessionTimeout))
		}
		var err error
		if c, err = kfake.NewCluster(opts...); err != nil {
			return nil, fmt.Errorf("embedded kafka on 127.0.0.1:%d: %w", o.KafkaPort, err)
		}
	}
	reg := srfake.New()
	ln, err := net.Listen("tcp", o.RegistryAddr)
	if err != nil {
		if c != nil {
			c.Close()
		}
		reg.Close()
		return nil, fmt.Errorf("embedded schema registry on %s: %w", o.RegistryAddr, err)
	}
	e := &Embedded{Cluster: c, Registry: reg, regLn: ln,
		regSrv: &http.Server{Handler: reg.Handler(), ReadHeaderTimeout: 5 * time.Second}}
	go func() { _ = e.regSrv.Serve(ln) }()
	return e, nil
}

// Brokers are the broker addresses (none with NoKafka).
func (e *Embedded) Brokers() []string {
	if e.Cluster == nil {
		return nil
	}
	return e.Cluster.ListenAddrs()
}

// RegistryURL is the registry's base URL.
func (e *Embedded) RegistryURL() string {
	a := e.regLn.Addr().(*net.TCPAddr)
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(a.Port))
}

// Close stops the registry and the broker.
func (e *Embedded) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := e.regSrv.Shutdown(ctx)
	e.Registry.Close()
	if e.Cluster != nil {
		e.Cluster.Close()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
