package sluice.peers;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.processor.TimestampExtractor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.state.Stores;
import org.apache.kafka.streams.state.WindowStore;
import org.apache.kafka.streams.state.WindowStoreIterator;

/**
 * Sluice's default purchases job on Kafka Streams (issue 20's peer comparison, driven by
 * bench/peers.go): decode + rules, dedup by event_id over the 24h horizon in a window
 * store, and revenue_by_country_1m (tumbling 1m, grace 5s; count, sum, avg, min, max)
 * emitted final through suppress, with processing.guarantee=exactly_once_v2. The deduped
 * raw records go to --clean-topic, the window results as JSON lines (key
 * country@windowStart) to --windows-topic. Prints "PEER READY" once RUNNING.
 */
public final class KStreamsPeer {
    /** Event time from the Avro payload's event_time, as Sluice windows it. */
    public static final class EventTimeExtractor implements TimestampExtractor {
        @Override
        public long extract(org.apache.kafka.clients.consumer.ConsumerRecord<Object, Object> rec, long partitionTime) {
            Object v = rec.value();
            long t = v instanceof byte[] ? Purchases.eventTime((byte[]) v) : Long.MIN_VALUE;
            return t == Long.MIN_VALUE || t < 0 ? rec.timestamp() : t;
        }
    }

    /** Running count/sum/min/max of one window. */
    static final class Agg {
        long count;
        double sum, min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;

        Agg add(double a) {
            count++;
            sum += a;
            min = Math.min(min, a);
            max = Math.max(max, a);
            return this;
        }
    }

    static final Serde<Agg> AGG_SERDE = Serdes.serdeFrom((Serializer<Agg>) (topic, a) -> {
        if (a == null) {
            return null;
        }
        return ByteBuffer.allocate(32).putLong(a.count).putDouble(a.sum).putDouble(a.min).putDouble(a.max).array();
    }, (Deserializer<Agg>) (topic, b) -> {
        if (b == null) {
            return null;
        }
        ByteBuffer bb = ByteBuffer.wrap(b);
        Agg a = new Agg();
        a.count = bb.getLong();
        a.sum = bb.getDouble();
        a.min = bb.getDouble();
        a.max = bb.getDouble();
        return a;
    });

    /** Decode, rules and dedup, per input partition (task), as Sluice's clean stage. */
    static final class CleanProcessor implements FixedKeyProcessor<byte[], byte[], Purchases.Purchase> {
        private final String avsc;
        private Purchases decoder;
        private WindowStore<String, Long> seen;
        private FixedKeyProcessorContext<byte[], Purchases.Purchase> ctx;

        CleanProcessor(String avsc) {
            this.avsc = avsc;
        }

        @Override
        public void init(FixedKeyProcessorContext<byte[], Purchases.Purchase> context) {
            this.ctx = context;
            this.seen = context.getStateStore("dedup");
            try {
                this.decoder = new Purchases(avsc);
            } catch (java.io.IOException e) {
                throw new IllegalStateException(e);
            }
        }

        @Override
        public void process(FixedKeyRecord<byte[], byte[]> rec) {
            Purchases.Purchase p = decoder.decode(rec.key(), rec.value());
            if (p == null) {
                return; // Sluice dead-letters it
            }
            // Ids are kept in hourly buckets (the window start), so a lookup visits at most
            // the buckets of +-horizon, and whole buckets expire with the store's retention.
            try (WindowStoreIterator<Long> it = seen.fetch(p.eventId, bucket(p.eventTime - Purchases.HORIZON_MS),
                    bucket(p.eventTime + Purchases.HORIZON_MS))) {
                while (it.hasNext()) {
                    long first = it.next().value;
                    if (first + Purchases.HORIZON_MS >= p.eventTime) {
                        return; // a duplicate within the horizon
                    }
                }
            }
            seen.put(p.eventId, p.eventTime, bucket(p.eventTime));
            ctx.forward(rec.withValue(p).withTimestamp(p.eventTime));
        }
    }

    static final long BUCKET_MS = 3600_000;

    static long bucket(long t) {
        return Math.floorDiv(t, BUCKET_MS) * BUCKET_MS;
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> a = parse(args);
        String brokers = a.getOrDefault("brokers", "127.0.0.1:9092");
        String avsc = a.get("avsc");
        String input = a.getOrDefault("input", "purchases");
        String cleanTopic = a.get("clean-topic");
        String windowsTopic = a.get("windows-topic");
        int threads = Integer.parseInt(a.getOrDefault("threads", "3"));

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, a.getOrDefault("app-id", "peers-kstreams"));
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, brokers);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Long.parseLong(a.getOrDefault("commit-ms", "100")));
        props.put(StreamsConfig.STATE_DIR_CONFIG, a.getOrDefault("state-dir",
                Files.createTempDirectory("peers-kstreams").toString()));
        props.put(StreamsConfig.DEFAULT_TIMESTAMP_EXTRACTOR_CLASS_CONFIG, EventTimeExtractor.class);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG),
                a.getOrDefault("reset", "earliest"));

        StreamsBuilder b = new StreamsBuilder();
        // Dedup ids live for the horizon (plus the bucket): the window store drops whole
        // hourly buckets past its retention.
        b.addStateStore(Stores.windowStoreBuilder(
                Stores.inMemoryWindowStore("dedup", Duration.ofMillis(Purchases.HORIZON_MS + BUCKET_MS),
                        Duration.ofMillis(BUCKET_MS), false),
                Serdes.String(), Serdes.Long()));
        KStream<byte[], Purchases.Purchase> clean = b
                .stream(input, Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()))
                .processValues(() -> new CleanProcessor(avsc), "dedup");
        clean.mapValues(p -> p.raw).to(cleanTopic, Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));
        clean.map((k, p) -> KeyValue.pair(p.country, p.amount))
                .groupByKey(Grouped.with(Serdes.String(), Serdes.Double()))
                .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(Purchases.WINDOW_MS),
                        Duration.ofMillis(Purchases.GRACE_MS)))
                .aggregate(Agg::new, (country, amount, agg) -> agg.add(amount),
                        Materialized.<String, Agg>as(Stores.inMemoryWindowStore("revenue_by_country_1m",
                                Duration.ofMinutes(10), Duration.ofMillis(Purchases.WINDOW_MS), false))
                                .withKeySerde(Serdes.String()).withValueSerde(AGG_SERDE))
                .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
                .toStream()
                .map((w, agg) -> KeyValue.pair(w.key() + "@" + w.window().start(),
                        Purchases.windowJSON(w.key(), w.window().start(), w.window().end(), agg.count, agg.sum,
                                agg.min, agg.max)))
                .to(windowsTopic, Produced.with(Serdes.String(), Serdes.String()));

        KafkaStreams streams = new KafkaStreams(b.build(), props);
        CountDownLatch done = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING) {
                System.out.println("PEER READY");
                System.out.flush();
            } else if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                done.countDown();
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("kstreams peer: " + e);
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(10));
            done.countDown();
        }));
        streams.start();
        done.await();
    }

    static Map<String, String> parse(String[] args) {
        Map<String, String> m = new HashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            if (!args[i].startsWith("--")) {
                throw new IllegalArgumentException("want --name value pairs, got " + args[i]);
            }
            m.put(args[i].substring(2), args[i + 1]);
        }
        return m;
    }

    private KStreamsPeer() {}
}
