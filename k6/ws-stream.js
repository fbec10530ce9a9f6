// k6 load test of the WebSocket stream API (GET /api/v1/stream/{topic}, docs/API.md#websockets):
// CLIENTS subscribers each hold one connection to a clean or aggregate topic for
// DURATION while a constant-arrival-rate feeder posts RATE single events per second to
// the source topic. Every streamed frame carries the record's sluice-ingest-ts header
// (unix microseconds), so the script measures ingest-to-subscriber latency
// (stream_latency; same-host clocks, or NTP-synced ones for a remote target).
//
//   k6 run k6/ws-stream.js
//   k6 run -e RATE=2000 -e CLIENTS=50 -e DURATION=1m k6/ws-stream.js
//   k6 run -e BASE_URL=https://ingest.example.com -e TOKEN=$JWT k6/ws-stream.js
//   k6 run -e RATE=0 -e STREAM=agg.revenue_by_country_1m k6/ws-stream.js
//
// Environment: BASE_URL (http://127.0.0.1:8080; the ws:// URL is derived), RATE events
// per second posted to SOURCE (200; 0: no feeder, stream what others send), DURATION
// (30s), TOKEN (bearer token: events:write for the feeder, events:read for the stream),
// SOURCE topic (purchases), STREAM topic (SOURCE.clean), FILTER (e.g. country=FR),
// CLIENTS (10), SEED (42), P95_MS threshold (1000).

import http from 'k6/http';
import ws from 'k6/ws';
import { check } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { authHeaders, event, intEnv, rng } from './lib/events.js';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const WS_URL = BASE_URL.replace(/^http/, 'ws');
const RATE = __ENV.RATE === '0' ? 0 : intEnv('RATE', 200);
const DURATION = __ENV.DURATION || '30s';
const SOURCE = __ENV.SOURCE || 'purchases';
const STREAM = __ENV.STREAM || `${SOURCE}.clean`;
const FILTER = __ENV.FILTER || '';
const CLIENTS = intEnv('CLIENTS', 10);
const SEED = intEnv('SEED', 42);
const P95_MS = intEnv('P95_MS', 1000);
const TOKEN = __ENV.TOKEN || '';

/** @type {Record<string, any>} */
const scenarios = {
  stream: {
    executor: 'per-vu-iterations',
    exec: 'stream',
    vus: CLIENTS,
    iterations: 1,
    maxDuration: '24h',
  },
};
if (RATE > 0) {
  scenarios.feed = {
    executor: 'constant-arrival-rate',
    exec: 'feed',
    rate: RATE,
    timeUnit: '1s',
    duration: DURATION,
    // Let the subscribers connect first.
    startTime: '2s',
    preAllocatedVUs: 20,
    maxVUs: 500,
  };
}

export const options = {
  scenarios: scenarios,
  thresholds: {
    stream_latency: [`p(95)<${P95_MS}`],
    stream_records: ['count>0'],
    stream_decode_errors: ['count==0'],
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
  },
};

const latency = new Trend('stream_latency', true);
const records = new Counter('stream_records');
const decodeErrors = new Counter('stream_decode_errors');
const closedEarly = new Rate('stream_closed_early');

const headers = authHeaders({ 'Content-Type': 'application/json' });
let r = rng(SEED);

// feed posts one event to the source topic.
export function feed() {
  if (__ITER === 0) {
    r = rng(SEED * 1000003 + __VU * 7919);
  }
  const res = http.post(`${BASE_URL}/api/v1/events/${SOURCE}`, JSON.stringify(event(SOURCE, r, `${__VU}-${__ITER}`)),
    { headers: headers, tags: { topic: SOURCE } });
  check(res, { 'feed status is 202': (x) => x.status === 202 });
}

// durationMs reads a k6 duration such as 30s, 2m or 1h30m.
function durationMs(s) {
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let m;
  while ((m = re.exec(s)) !== null) {
    total += parseFloat(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2]];
  }
  if (!(total > 0)) {
    throw new Error(`DURATION: cannot read "${s}"`);
  }
  return total;
}

// stream holds one subscription open for DURATION (plus the feeder's start delay) and
// measures every frame.
export function stream() {
  const url = `${WS_URL}/api/v1/stream/${STREAM}` + (FILTER ? `?filter=${encodeURIComponent(FILTER)}` : '');
  /** @type {Record<string, any>} */
  const params = { tags: { topic: STREAM } };
  if (TOKEN) {
    params.headers = { Authorization: `Bearer ${TOKEN}` };
  }
  let timedOut = false;
  const res = ws.connect(url, params, function (socket) {
    socket.on('message', function (data) {
      const now = Date.now();
      let frame;
      try {
        frame = JSON.parse(data);
      } catch (e) {
        decodeErrors.add(1);
        return;
      }
      if (frame.decode_error) {
        decodeErrors.add(1);
      }
      records.add(1);
      const its = frame.headers && frame.headers['sluice-ingest-ts'];
      if (its) {
        latency.add(now - parseInt(its, 10) / 1000);
      }
    });
    socket.on('error', function (e) {
      console.error(`websocket error: ${e.error()}`);
    });
    socket.setTimeout(function () {
      timedOut = true;
      socket.close();
    }, durationMs(DURATION) + 2000);
  });
  check(res, { 'handshake status is 101': (x) => x && x.status === 101 });
  closedEarly.add(!timedOut);
}
