package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/pipeline/wire"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// consumedBy is one consumer group and a topic it must have consumed to the end.
type consumedBy struct {
	group, topic string
	// slack is how far below the end offset a commit may be: 1 on a transactional
	// topic, whose last offset may be a commit marker no record follows.
	slack int64
}

// groupsOf are the consumer groups and topics of run r whose commits say it has read
// its whole input.
func groupsOf(r peerRun, tag string, t peerTopics) []consumedBy {
	switch r.system {
	case peerSluice:
		return []consumedBy{{wire.GroupID(wire.StageClean), t.input, 0}, {wire.GroupID(wire.StageRepartition(t.agg)), t.clean, 1},
			{wire.GroupID(wire.StageAggregate(t.agg)), wire.RepartitionTopic(t.agg), 1}}
	case peerKStreams:
		return []consumedBy{{tag, t.input, 0}, {tag, tag + "-revenue_by_country_1m-repartition", 1}}
	}
	return []consumedBy{{tag, t.input, 0}} // Flink commits its offsets on checkpoints
}

// caughtUp reports whether every group has committed its topic to the end.
func caughtUp(ctx context.Context, adm *kadm.Client, cs []consumedBy) bool {
	for _, c := range cs {
		ends, err := adm.ListEndOffsets(ctx, c.topic)
		if err != nil || ends.Error() != nil {
			return false
		}
		committed, err := adm.FetchOffsets(ctx, c.group)
		if err != nil {
			return false
		}
		ok := true
		ends.Each(func(e kadm.ListedOffset) {
			o, found := committed.Lookup(e.Topic, e.Partition)
			if e.Offset == 0 {
				return
			}
			if !found || o.At < e.Offset-c.slack {
				ok = false
			}
		})
		if !ok {
			return false
		}
	}
	return true
}

// peerTopics are a run's input and output topics.
type peerTopics struct {
	input, clean, windows, agg string
}

// startPeer starts system r on the topics and returns it ready, with its schema id
// (Sluice's; 0 for the JVMs) and the time it took to become ready.
func startPeer(ctx context.Context, o peerOptions, root, work, tag string, r peerRun, t peerTopics) (*peerProc, int, error) {
	dir := filepath.Join(work, tag)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, err
	}
	avsc := filepath.Join(root, "pipeline", "schema", "avsc", "purchases.avsc")
	var argv []string
	switch r.system {
	case peerSluice:
		argv = []string{filepath.Join(work, "sluicepeer"), "-brokers", strings.Join(o.Brokers, ","), "-input", t.input,
			"-agg", t.agg, "-instance", tag}
	case peerKStreams:
		argv = javaArgv(root, peerKStreams, "sluice.peers.KStreamsPeer", o.Heap, "--brokers", strings.Join(o.Brokers, ","),
			"--app-id", tag, "--input", t.input, "--clean-topic", t.clean, "--windows-topic", t.windows, "--avsc", avsc,
			"--threads", strconv.Itoa(o.KStreamsThreads), "--commit-ms", "100", "--state-dir", filepath.Join(dir, "state"))
	case peerFlink:
		argv = javaArgv(root, peerFlink, "sluice.peers.FlinkPeer", o.Heap, "--brokers", strings.Join(o.Brokers, ","),
			"--group", tag, "--input", t.input, "--clean-topic", t.clean, "--windows-topic", t.windows, "--avsc", avsc,
			"--parallelism", strconv.Itoa(peerPartitions), "--checkpoint-ms", strconv.FormatInt(r.checkpoint.Milliseconds(), 10),
			"--checkpoint-dir", filepath.Join(dir, "checkpoints"))
	}
	p, lines, err := startPeerProc(ctx, r.key, root, filepath.Join(dir, "log.txt"), argv, 3*time.Minute)
	if err != nil {
		return nil, 0, err
	}
	id := 0
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, "SCHEMA_ID "); ok {
			id, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if r.system == peerSluice && id == 0 {
		p.Stop()
		return nil, 0, fmt.Errorf("sluicepeer printed no SCHEMA_ID")
	}
	return p, id, nil
}

// runTopics names the topics of one run of r; Sluice names its outputs itself
// (<input>.clean and agg.<agg>).
func runTopics(runID, tag string, r peerRun, input string) peerTopics {
	t := peerTopics{input: input, agg: strings.ReplaceAll(tag, "-", "_")}
	if r.system == peerSluice {
		t.clean, t.windows = wire.CleanTopic(input), wire.AggTopic(t.agg)
	} else {
		t.clean, t.windows = wire.CleanTopic(tag), tag+".windows"
	}
	return t
}

func configOf(r peerRun, o peerOptions) (string, string) {
	heap := o.Heap
	switch r.system {
	case peerKStreams:
		return kstreamsVersion, fmt.Sprintf("exactly_once_v2, %d stream threads, commit.interval.ms 100, in-memory window stores (dedup 24h, windows), suppress untilWindowCloses, -Xmx%s", o.KStreamsThreads, heap)
	case peerFlink:
		return flinkVersion, fmt.Sprintf("MiniCluster, parallelism %d, checkpoint every %s (exactly-once) to local files, HashMap state, bounded-out-of-orderness 5s per partition, exactly-once KafkaSink, -Xmx%s", peerPartitions, r.checkpoint, heap)
	}
	return "Sluice (this commit)", "built-in pipeline cut to purchases + revenue_by_country_1m, memory state, transactions (clean: as soon as nothing is buffered; aggregate: 100ms), idle advance off"
}

// drainRun runs r over the preloaded input and fills res.
//
// The flush tail goes into the input only once the system has committed all of it (and
// its repartition topic): Kafka Streams takes the largest time its task has seen as stream
// time, so a jump ahead drops every record still on its way from another task. Sluice and
// Flink take the minimum over partitions and would not need it; all three get it the
// same way. The drain time includes that wait (polls every 100 ms; Flink commits its
// offsets with each checkpoint).
func drainRun(ctx context.Context, o peerOptions, root, work, runID, raw string, r peerRun, in *peerInput, res *peerResult,
	pcl *kgo.Client, progress io.Writer) error {
	tag := "peers-" + runID + "-" + strings.ReplaceAll(r.key, "_", "-") + "-drain"
	tag = strings.ReplaceAll(tag, ".", "")
	t := runTopics(runID, tag, r, raw)
	res.Version, res.Config = configOf(r, o)
	cl, err := kgo.NewClient(kgo.SeedBrokers(o.Brokers...))
	if err != nil {
		return err
	}
	if r.system != peerSluice {
		if err := createTopics(ctx, kadm.NewClient(cl), t.clean, t.windows); err != nil {
			cl.Close()
			return err
		}
	}
	cl.Close()
	wc, err := startWindowConsumer(o.Brokers, t.windows, r.system == peerSluice)
	if err != nil {
		return err
	}
	defer wc.Stop()

	fmt.Fprintf(progress, "peers: %s: draining %d records\n", r.key, len(in.Events))
	start := time.Now()
	p, id, err := startPeer(ctx, o, root, work, tag, r, t)
	if err != nil {
		return err
	}
	defer p.Stop()
	if r.system == peerSluice && id != 1 {
		return fmt.Errorf("sluicepeer's raw schema id is %d, the input was framed with 1", id)
	}
	ready := time.Now()
	res.StartupSeconds = ready.Sub(start).Seconds()
	cpu0 := p.CPU()
	want := len(in.Expected)
	deadline := time.NewTimer(o.DrainTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last time.Time
	adm := kadm.NewClient(pcl)
	groups := groupsOf(r, tag, t)
	flushed := false
wait:
	for {
		select {
		case <-tick.C:
			if !flushed {
				if !caughtUp(ctx, adm, groups) {
					continue
				}
				enc, err := newPeerEncoder(raw, 1)
				if err != nil {
					return err
				}
				var recs []*kgo.Record
				tailEvs := in.Tail()
				for i := range tailEvs {
					rec, err := enc.record(&tailEvs[i])
					if err != nil {
						return err
					}
					recs = append(recs, rec)
				}
				if err := pcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
					return fmt.Errorf("flush: %w", err)
				}
				flushed = true
			}
			// Done when every sentinel (a window of the first flush, closed by the second)
			// is visible: everything before has been emitted, or never will be.
			if wc.CountAt(in.FlushTime) >= len(peerCountries) {
				_, last = wc.CountBefore(in.FlushTime)
				break wait
			}
		case <-p.Exited():
			return p.Err()
		case <-deadline.C:
			n, _ := wc.CountBefore(in.FlushTime)
			return fmt.Errorf("only %d of %d window results (%d of %d sentinels) within %s", n, want,
				wc.CountAt(in.FlushTime), len(peerCountries), o.DrainTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	cpu1 := p.CPU()
	res.RSSPeakMB = peerRound1(p.RSSPeakMB())
	// A moment more for duplicates or extra windows to show before comparing.
	time.Sleep(2 * time.Second)
	got := wc.Windows()
	p.Stop()

	res.DrainEvents = len(in.Events) + len(in.Tail())
	res.DrainSeconds = peerRound3(last.Sub(ready).Seconds())
	res.DrainEventsPerS = math.Round(float64(res.DrainEvents) / last.Sub(ready).Seconds())
	res.CPUSPer1k = peerRound4((cpu1 - cpu0) / float64(res.DrainEvents) * 1000)
	for k, w := range got {
		if w.Start < in.FlushTime {
			res.Windows++
		} else {
			delete(got, k)
		}
	}
	res.FirstDiffs, res.Differences = compareWindows(in.Expected, got, in.FlushTime, 5)
	res.MatchesOracle = res.Differences == 0
	fmt.Fprintf(progress, "peers: %s: ready in %.1fs, drained in %.1fs (%.0f events/s), %.3f CPU s/1k events, RSS peak %.0f MiB, %d windows, %d differences from the oracle\n",
		r.key, res.StartupSeconds, res.DrainSeconds, res.DrainEventsPerS, res.CPUSPer1k, res.RSSPeakMB, res.Windows, res.Differences)
	for _, d := range res.FirstDiffs {
		fmt.Fprintf(progress, "peers: %s:   %s\n", r.key, d)
	}
	return nil
}

func peerRound1(f float64) float64 { return math.Round(f*10) / 10 }
func peerRound3(f float64) float64 { return math.Round(f*1000) / 1000 }
func peerRound4(f float64) float64 { return math.Round(f*10000) / 10000 }
