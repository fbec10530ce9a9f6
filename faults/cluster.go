package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Nodes are the node ids of the cluster of scripts/kafka/kafka-cluster.sh.
var Nodes = []int{1, 2, 3}

// Cluster is the three-node cluster of scripts/kafka/kafka-cluster.sh with one toxiproxy
// proxy in front of each node's PROXIED listener. Clients bootstrapped on Bootstrap talk
// only through the proxies (the brokers advertise the proxies' addresses there);
// replication between the brokers does not cross them.
type Cluster struct {
	// Base is the cluster's base port (SLUICE_KAFKA_CLUSTER_PORT, default 29200).
	Base int
	// Script is the path of kafka-cluster.sh.
	Script string

	mu      sync.Mutex
	proxies map[int]*toxiproxy.Proxy
}

// NewCluster describes the cluster on base port base; script is kafka-cluster.sh.
func NewCluster(base int, script string) *Cluster {
	return &Cluster{Base: base, Script: script, proxies: map[int]*toxiproxy.Proxy{}}
}

// ClusterFromEnv is the cluster on SLUICE_KAFKA_CLUSTER_PORT (default 29200), its script
// found from dir (a directory inside the repository) upwards.
func ClusterFromEnv(dir string) (*Cluster, error) {
	base := 29200
	if s := os.Getenv("SLUICE_KAFKA_CLUSTER_PORT"); s != "" {
		b, err := strconv.Atoi(s)
		if err != nil || b <= 0 || b > 65400 {
			return nil, fmt.Errorf("SLUICE_KAFKA_CLUSTER_PORT=%q: want a port", s)
		}
		base = b
	}
	d, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for range 10 {
		p := filepath.Join(d, "scripts", "kafka", "kafka-cluster.sh")
		if _, err := os.Stat(p); err == nil {
			return NewCluster(base, p), nil
		}
		d = filepath.Dir(d)
	}
	return nil, fmt.Errorf("scripts/kafka/kafka-cluster.sh not found above %s", dir)
}

func (c *Cluster) port(n, off int) int { return c.Base + 10*n + off }

// Direct lists the nodes' PLAINTEXT addresses (no proxy).
func (c *Cluster) Direct() []string { return c.addrs(0) }

// Bootstrap lists the proxies' addresses, what Sluice connects to.
func (c *Cluster) Bootstrap() []string { return c.addrs(3) }

// JMX lists the nodes' JMX exporter addresses (/metrics).
func (c *Cluster) JMX() []string { return c.addrs(4) }

func (c *Cluster) addrs(off int) []string {
	out := make([]string, len(Nodes))
	for i, n := range Nodes {
		out[i] = "127.0.0.1:" + strconv.Itoa(c.port(n, off))
	}
	return out
}

// NodeOf returns the node id whose direct, proxied or proxy port addr is, or 0.
func (c *Cluster) NodeOf(addr string) int {
	for _, n := range Nodes {
		for _, off := range []int{0, 1, 3} {
			if strings.HasSuffix(addr, ":"+strconv.Itoa(c.port(n, off))) {
				return n
			}
		}
	}
	return 0
}

// StartProxies starts one proxy per node (listening on the node's advertised proxy port).
// StopProxies undoes it.
func (c *Cluster) StartProxies() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	// The toxics log through zerolog's global logger, at trace level per chunk.
	zerolog.SetGlobalLevel(zerolog.WarnLevel)
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	for _, n := range Nodes {
		p := toxiproxy.NewProxy(srv, fmt.Sprintf("kafka-%d", n),
			"127.0.0.1:"+strconv.Itoa(c.port(n, 3)), "127.0.0.1:"+strconv.Itoa(c.port(n, 1)))
		if err := p.Start(); err != nil {
			c.stopProxies()
			return fmt.Errorf("proxy of node %d: %w", n, err)
		}
		c.proxies[n] = p
	}
	return nil
}

// StopProxies stops every proxy and closes its connections.
func (c *Cluster) StopProxies() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopProxies()
}

func (c *Cluster) stopProxies() {
	for n, p := range c.proxies {
		p.Stop()
		delete(c.proxies, n)
	}
}

// Toxic is one toxiproxy toxic: Type is latency, bandwidth, reset_peer, timeout, ...;
// Stream is upstream (to the broker) or downstream; Attributes as toxiproxy documents them.
type Toxic struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Stream     string         `json:"stream"`
	Toxicity   float32        `json:"toxicity"`
	Attributes map[string]any `json:"attributes"`
}

// AddToxic adds t to the proxy of node n.
func (c *Cluster) AddToxic(n int, t Toxic) error {
	p, err := c.proxy(n)
	if err != nil {
		return err
	}
	if t.Toxicity == 0 {
		t.Toxicity = 1
	}
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if _, err := p.Toxics.AddToxicJson(strings.NewReader(string(b))); err != nil {
		return fmt.Errorf("node %d: add toxic %s: %w", n, t.Name, err)
	}
	return nil
}

// RemoveToxic removes the toxic named name from the proxy of node n.
func (c *Cluster) RemoveToxic(ctx context.Context, n int, name string) error {
	p, err := c.proxy(n)
	if err != nil {
		return err
	}
	if err := p.Toxics.RemoveToxic(ctx, name); err != nil {
		return fmt.Errorf("node %d: remove toxic %s: %w", n, name, err)
	}
	return nil
}

// ResetConnections closes every connection through the proxy of node n (as a TCP
// connection that timed out during a partition) and accepts new ones again.
func (c *Cluster) ResetConnections(n int) error {
	p, err := c.proxy(n)
	if err != nil {
		return err
	}
	p.Stop()
	return p.Start()
}

func (c *Cluster) proxy(n int) (*toxiproxy.Proxy, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.proxies[n]
	if !ok {
		return nil, fmt.Errorf("no proxy for node %d (StartProxies first)", n)
	}
	return p, nil
}

// Kill kills node n with SIGKILL and returns when it is gone.
func (c *Cluster) Kill(ctx context.Context, n int) error { return c.run(ctx, "kill", n) }

// Stop stops node n gracefully (SIGTERM: controlled shutdown, leadership moved first).
func (c *Cluster) Stop(ctx context.Context, n int) error { return c.run(ctx, "stop", n) }

// Start starts node n on its data and returns when it serves.
func (c *Cluster) Start(ctx context.Context, n int) error { return c.run(ctx, "start", n) }

// Running reports which nodes run.
func (c *Cluster) Running(ctx context.Context) (map[int]bool, error) {
	out, err := c.cmd(ctx, "status").Output()
	if err != nil {
		return nil, fmt.Errorf("kafka-cluster.sh status: %w", err)
	}
	up := map[int]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && f[0] == "node" {
			n, _ := strconv.Atoi(f[1])
			up[n] = f[2] != "down"
		}
	}
	return up, nil
}

func (c *Cluster) run(ctx context.Context, verb string, n int) error {
	out, err := c.cmd(ctx, verb, strconv.Itoa(n)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("kafka-cluster.sh %s %d: %w: %s", verb, n, err, out)
	}
	return nil
}

func (c *Cluster) cmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Script, args...)
	cmd.Env = append(os.Environ(), "SLUICE_KAFKA_CLUSTER_PORT="+strconv.Itoa(c.Base))
	return cmd
}
