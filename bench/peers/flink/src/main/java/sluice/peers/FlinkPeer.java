package sluice.peers;

import java.time.Duration;
import java.util.HashMap;
import java.util.Map;

import org.apache.flink.api.common.JobStatus;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.serialization.DeserializationSchema;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * Sluice's default purchases job on Flink (issue 20's peer comparison, driven by
 * bench/peers.go), in a local MiniCluster: Kafka source with per-partition
 * bounded-out-of-orderness watermarks (grace 5s), decode + rules, keyed dedup state on
 * event_id (cleared by an event-time timer after the 24h horizon), revenue_by_country_1m
 * as a tumbling 1m event-time window, and exactly-once Kafka sinks (transactions committed
 * on checkpoints every --checkpoint-ms). The deduped raw records go to --clean-topic, the
 * window results as JSON lines to --windows-topic. Prints "PEER READY" once the job runs.
 */
public final class FlinkPeer {
    /** Decodes and checks at the source; records that fail are dropped (Sluice dead-letters them). */
    static final class PurchaseDeserializer implements KafkaRecordDeserializationSchema<Purchases.Purchase> {
        private final String avsc;
        private transient Purchases decoder;

        PurchaseDeserializer(String avsc) {
            this.avsc = avsc;
        }

        @Override
        public void open(DeserializationSchema.InitializationContext context) throws Exception {
            decoder = new Purchases(avsc);
        }

        @Override
        public void deserialize(ConsumerRecord<byte[], byte[]> rec, Collector<Purchases.Purchase> out) {
            Purchases.Purchase p = decoder.decode(rec.key(), rec.value());
            if (p != null) {
                out.collect(p);
            }
        }

        @Override
        public TypeInformation<Purchases.Purchase> getProducedType() {
            return TypeInformation.of(Purchases.Purchase.class);
        }
    }

    /** Keyed by event_id: the first record within the horizon passes, the rest are dropped. */
    static final class Dedup extends KeyedProcessFunction<String, Purchases.Purchase, Purchases.Purchase> {
        private transient ValueState<Long> expiry;

        @Override
        public void open(OpenContext ctx) {
            expiry = getRuntimeContext().getState(new ValueStateDescriptor<>("expiry", Types.LONG));
        }

        @Override
        public void processElement(Purchases.Purchase p, Context ctx, Collector<Purchases.Purchase> out)
                throws Exception {
            Long exp = expiry.value();
            if (exp != null && exp >= p.eventTime) {
                return;
            }
            long e = p.eventTime + Purchases.HORIZON_MS;
            expiry.update(e);
            ctx.timerService().registerEventTimeTimer(e);
            out.collect(p);
        }

        @Override
        public void onTimer(long ts, OnTimerContext ctx, Collector<Purchases.Purchase> out) throws Exception {
            Long exp = expiry.value();
            if (exp != null && exp <= ts) {
                expiry.clear();
            }
        }
    }

    /** count, sum, min, max of one window. */
    public static final class Acc {
        public long count;
        public double sum;
        public double min = Double.POSITIVE_INFINITY;
        public double max = Double.NEGATIVE_INFINITY;

        public Acc() {}
    }

    static final class Revenue implements AggregateFunction<Purchases.Purchase, Acc, Acc> {
        @Override
        public Acc createAccumulator() {
            return new Acc();
        }

        @Override
        public Acc add(Purchases.Purchase p, Acc a) {
            a.count++;
            a.sum += p.amount;
            a.min = Math.min(a.min, p.amount);
            a.max = Math.max(a.max, p.amount);
            return a;
        }

        @Override
        public Acc getResult(Acc a) {
            return a;
        }

        @Override
        public Acc merge(Acc a, Acc b) {
            a.count += b.count;
            a.sum += b.sum;
            a.min = Math.min(a.min, b.min);
            a.max = Math.max(a.max, b.max);
            return a;
        }
    }

    static final class ToJSON extends ProcessWindowFunction<Acc, String, String, TimeWindow> {
        @Override
        public void process(String country, Context ctx, Iterable<Acc> in, Collector<String> out) {
            for (Acc a : in) {
                out.collect(Purchases.windowJSON(country, ctx.window().getStart(), ctx.window().getEnd(), a.count,
                        a.sum, a.min, a.max));
            }
        }
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> a = parse(args);
        String brokers = a.getOrDefault("brokers", "127.0.0.1:9092");
        String avsc = a.get("avsc");
        String input = a.getOrDefault("input", "purchases");
        String cleanTopic = a.get("clean-topic");
        String windowsTopic = a.get("windows-topic");
        String group = a.getOrDefault("group", "peers-flink");
        int parallelism = Integer.parseInt(a.getOrDefault("parallelism", "3"));
        long checkpointMs = Long.parseLong(a.getOrDefault("checkpoint-ms", "1000"));
        boolean latest = "latest".equals(a.getOrDefault("reset", "earliest"));

        Configuration conf = new Configuration();
        // Checkpoints go to files: the default (JobManager memory) refuses a state over
        // 5 MiB, and the dedup ids of a million events are more.
        conf.set(CheckpointingOptions.CHECKPOINT_STORAGE, "filesystem");
        conf.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY,
                "file://" + a.getOrDefault("checkpoint-dir",
                        java.nio.file.Files.createTempDirectory("peers-flink-ckpt").toString()));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(parallelism);
        env.enableCheckpointing(checkpointMs);

        KafkaSource<Purchases.Purchase> source = KafkaSource.<Purchases.Purchase>builder()
                .setBootstrapServers(brokers)
                .setTopics(input)
                .setGroupId(group)
                .setStartingOffsets(latest ? OffsetsInitializer.latest() : OffsetsInitializer.earliest())
                .setDeserializer(new PurchaseDeserializer(avsc))
                .setProperty("isolation.level", "read_committed")
                .build();
        // Per-partition (per-split) watermarks: the source tracks each partition and emits
        // their minimum, as Sluice takes the minimum over its source partitions.
        WatermarkStrategy<Purchases.Purchase> wm = WatermarkStrategy
                .<Purchases.Purchase>forBoundedOutOfOrderness(Duration.ofMillis(Purchases.GRACE_MS))
                .withTimestampAssigner((p, ts) -> p.eventTime);
        DataStream<Purchases.Purchase> clean = env.fromSource(source, wm, "purchases")
                .keyBy(p -> p.eventId)
                .process(new Dedup())
                .name("dedup");

        final String ct = cleanTopic;
        KafkaSink<Purchases.Purchase> cleanSink = KafkaSink.<Purchases.Purchase>builder()
                .setBootstrapServers(brokers)
                .setRecordSerializer((KafkaRecordSerializationSchema<Purchases.Purchase>) (p, ctx,
                        ts) -> new ProducerRecord<>(ct, null, ts, p.key, p.raw))
                .setDeliveryGuarantee(DeliveryGuarantee.EXACTLY_ONCE)
                .setTransactionalIdPrefix(group + "-clean")
                .setProperty("transaction.timeout.ms", "600000")
                .build();
        clean.sinkTo(cleanSink).name("clean-sink");

        final String wt = windowsTopic;
        KafkaSink<String> windowSink = KafkaSink.<String>builder()
                .setBootstrapServers(brokers)
                .setRecordSerializer((KafkaRecordSerializationSchema<String>) (s, ctx,
                        ts) -> new ProducerRecord<>(wt, null, ts, null,
                                s.getBytes(java.nio.charset.StandardCharsets.UTF_8)))
                .setDeliveryGuarantee(DeliveryGuarantee.EXACTLY_ONCE)
                .setTransactionalIdPrefix(group + "-windows")
                .setProperty("transaction.timeout.ms", "600000")
                .build();
        clean.keyBy(p -> p.country)
                .window(TumblingEventTimeWindows.of(Duration.ofMillis(Purchases.WINDOW_MS)))
                .aggregate(new Revenue(), new ToJSON())
                .name("revenue_by_country_1m")
                .sinkTo(windowSink).name("windows-sink");

        JobClient job = env.executeAsync("sluice-peer-flink");
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                job.cancel().get();
            } catch (Exception e) {
                // exiting anyway
            }
        }));
        while (job.getJobStatus().get() != JobStatus.RUNNING) {
            Thread.sleep(50);
        }
        System.out.println("PEER READY");
        System.out.flush();
        job.getJobExecutionResult().get();
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

    private FlinkPeer() {}
}
