package sluice.peers;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Pattern;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;

/**
 * The purchases part of Sluice's default pipeline (pipeline/config/default.yaml), as a peer
 * runs it: decode a Confluent-framed Avro record (magic byte, 4-byte schema id, then Avro
 * binary) with org.apache.avro and the schema of pipeline/schema/avsc/purchases.avsc, and
 * check the topic's rules. This file is the same in bench/peers/kstreams and
 * bench/peers/flink (scripts/peers/run.sh checks that).
 */
public final class Purchases {
    /** Dedup horizon of the default pipeline (dedup.horizon: 24h). */
    public static final long HORIZON_MS = 24L * 3600 * 1000;
    /** revenue_by_country_1m: tumbling 1m, grace 5s. */
    public static final long WINDOW_MS = 60_000, GRACE_MS = 5_000;

    private static final Pattern COUNTRY = Pattern.compile("^[A-Z]{2}$");
    private static final Set<String> CURRENCIES = Set.of("EUR", "USD", "GBP", "JPY", "CHF", "CAD",
            "AUD", "NZD", "SEK", "NOK", "DKK", "PLN", "CZK", "HUF", "CNY", "HKD", "SGD", "KRW", "INR",
            "BRL", "MXN", "ZAR", "TRY", "AED");

    /** One decoded, valid purchase: what the later steps need, and the raw record. */
    public static final class Purchase implements java.io.Serializable {
        public String eventId;
        public String country;
        public double amount;
        public long eventTime;
        public byte[] key;
        public byte[] raw;

        public Purchase() {}
    }

    private final GenericDatumReader<GenericRecord> reader;
    private BinaryDecoder decoder;
    private GenericRecord reuse;

    public Purchases(String avscPath) throws IOException {
        Schema schema = new Schema.Parser().parse(new File(avscPath));
        this.reader = new GenericDatumReader<>(schema);
    }

    /**
     * Decodes a framed record and checks the rules; null when it fails either (Sluice
     * dead-letters those records; the peers drop them).
     */
    public Purchase decode(byte[] key, byte[] value) {
        if (value == null || value.length < 5 || value[0] != 0) {
            return null;
        }
        GenericRecord r;
        try {
            decoder = DecoderFactory.get().binaryDecoder(value, 5, value.length - 5, decoder);
            r = reader.read(reuse, decoder);
            reuse = r;
        } catch (IOException | RuntimeException e) {
            return null;
        }
        String eventId = str(r.get("event_id"));
        String country = str(r.get("country"));
        String currency = str(r.get("currency"));
        Object amountObj = r.get("amount");
        Object itemsObj = r.get("items");
        if (!text(eventId, 128) || !text(str(r.get("user_id")), 256) || !text(str(r.get("order_id")), 128)
                || !text(str(r.get("product_id")), 128)) {
            return null;
        }
        if (country == null || !COUNTRY.matcher(country).matches()) {
            return null;
        }
        if (!(amountObj instanceof Double)) {
            return null;
        }
        double amount = (Double) amountObj;
        if (Double.isNaN(amount) || amount < 0 || amount > 1_000_000) {
            return null;
        }
        if (currency == null || !CURRENCIES.contains(currency)) {
            return null;
        }
        if (itemsObj instanceof Integer) {
            int items = (Integer) itemsObj;
            if (items < 1 || items > 10000) {
                return null;
            }
        }
        Purchase p = new Purchase();
        p.eventId = eventId;
        p.country = country;
        p.amount = amount;
        p.eventTime = (Long) r.get("event_time");
        p.key = key;
        p.raw = value;
        return p;
    }

    /** required + max_len in UTF-8 bytes. */
    private static boolean text(String s, int maxLen) {
        return s != null && !s.isEmpty() && s.getBytes(StandardCharsets.UTF_8).length <= maxLen;
    }

    private static String str(Object o) {
        return o == null ? null : o.toString();
    }

    /**
     * The event time of a framed purchase without decoding the rest: event_id (a string)
     * is the first field and event_time (a long) the second. Long.MIN_VALUE if it cannot.
     */
    public static long eventTime(byte[] v) {
        if (v == null || v.length < 6) {
            return Long.MIN_VALUE;
        }
        int[] pos = {5};
        long len = varint(v, pos);
        if (len < 0) {
            return Long.MIN_VALUE;
        }
        pos[0] += (int) len;
        if (pos[0] >= v.length) {
            return Long.MIN_VALUE;
        }
        long t = varint(v, pos);
        return t;
    }

    /** Reads a zigzag varint at pos[0]; Long.MIN_VALUE when truncated. */
    private static long varint(byte[] v, int[] pos) {
        long raw = 0;
        int shift = 0;
        while (pos[0] < v.length && shift < 64) {
            byte b = v[pos[0]++];
            raw |= (long) (b & 0x7f) << shift;
            if ((b & 0x80) == 0) {
                return (raw >>> 1) ^ -(raw & 1);
            }
            shift += 7;
        }
        return Long.MIN_VALUE;
    }

    /** One window result as the JSON line the bench compares. */
    public static String windowJSON(String country, long start, long end, long count, double sum, double min,
            double max) {
        return String.format(Locale.ROOT,
                "{\"country\":\"%s\",\"start\":%d,\"end\":%d,\"count\":%d,\"sum\":%s,\"avg\":%s,\"min\":%s,\"max\":%s}",
                country, start, end, count, Double.toString(sum), Double.toString(sum / count),
                Double.toString(min), Double.toString(max));
    }
}
