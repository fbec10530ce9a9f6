// k6 load test of the WebSocket ingest API (GET /api/v1/ingest/{topic}, docs/API.md#websockets).
//
// Each VU iteration opens one connection, sends EVENTS purchase events in messages of
// BATCH events (a JSON object when BATCH=1, else a JSON array), keeps at most WINDOW
// messages unanswered (the server's own in-flight limit is 64), and measures the time
// from sending a message to its ack frame ({"seq": n, "accepted": k, "event_ids": [...]}),
// which the server sends only after Kafka acknowledged the events.
//
// Events are generated from SEED, the VU number and the iteration, so a run is
// repeatable; event_id is left to the server (a ULID), event_time is the send time.
//
//   k6 run k6/ws-ingest.js
//   k6 run -e VUS=50 -e DURATION=2m -e EVENTS=5000 -e BATCH=10 k6/ws-ingest.js
//   k6 run -e BASE_URL=wss://ingest.example.com -e TOKEN=$JWT k6/ws-ingest.js
//
// Environment: BASE_URL (ws://127.0.0.1:8080), TOPIC (purchases), VUS (10),
// DURATION (30s), EVENTS per iteration (1000), BATCH (1), WINDOW (32), SEED (42),
// TOKEN (bearer token; unset: no Authorization header), TIMEOUT_MS per iteration (60000).

import ws from 'k6/ws';
import { check, fail } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';

const BASE_URL = __ENV.BASE_URL || 'ws://127.0.0.1:8080';
const TOPIC = __ENV.TOPIC || 'purchases';
const EVENTS = intEnv('EVENTS', 1000);
const BATCH = intEnv('BATCH', 1);
const WINDOW = intEnv('WINDOW', 32);
const SEED = intEnv('SEED', 42);
const TIMEOUT_MS = intEnv('TIMEOUT_MS', 60000);
const TOKEN = __ENV.TOKEN || '';

export const options = {
  vus: intEnv('VUS', 10),
  duration: __ENV.DURATION || '30s',
  thresholds: {
    ws_ack_latency: ['p(95)<1000'],
    ws_ack_errors: ['rate<0.01'],
    ws_iteration_complete: ['rate>0.99'],
    checks: ['rate>0.99'],
  },
};

const ackLatency = new Trend('ws_ack_latency', true);
const acks = new Counter('ws_acks');
const eventsAccepted = new Counter('ws_events_accepted');
const ackErrors = new Rate('ws_ack_errors');
const iterationComplete = new Rate('ws_iteration_complete');

function intEnv(name, def) {
  const v = __ENV[name];
  if (v === undefined || v === '') {
    return def;
  }
  const n = parseInt(v, 10);
  if (!(n > 0)) {
    throw new Error(`${name} must be a positive integer, got "${v}"`);
  }
  return n;
}

// mulberry32: a small seeded PRNG returning floats in [0, 1).
function rng(seed) {
  let a = seed >>> 0;
  return function () {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const COUNTRIES = ['DE', 'FR', 'US', 'GB', 'NL', 'ES', 'IT', 'PL', 'SE', 'JP'];
const DEVICES = ['desktop', 'mobile', 'tablet'];
const CURRENCIES = { DE: 'EUR', FR: 'EUR', NL: 'EUR', ES: 'EUR', IT: 'EUR', US: 'USD', GB: 'GBP', PL: 'PLN', SE: 'SEK', JP: 'JPY' };

function pick(r, xs) {
  return xs[Math.floor(r() * xs.length)];
}

// purchase returns one event of the built-in purchases schema.
function purchase(r, n) {
  const country = pick(r, COUNTRIES);
  const user = Math.floor(r() * 10000);
  return {
    event_time: new Date().toISOString(),
    user_id: `u-${user}`,
    session_id: `s-${user}-${Math.floor(r() * 20)}`,
    country: country,
    device: pick(r, DEVICES),
    order_id: `o-${__VU}-${__ITER}-${n}`,
    amount: Math.round((1 + r() * 499) * 100) / 100,
    currency: CURRENCIES[country],
    items: 1 + Math.floor(r() * 5),
    product_id: `p-${Math.floor(r() * 500)}`,
  };
}

export default function () {
  const r = rng(SEED * 1000003 + __VU * 7919 + __ITER);
  const messages = Math.ceil(EVENTS / BATCH);
  const params = { tags: { topic: TOPIC } };
  if (TOKEN) {
    params.headers = { Authorization: `Bearer ${TOKEN}` };
  }
  let sent = 0; // messages sent; message i has seq i+1 on this connection
  let answered = 0;
  let eventsSent = 0;
  const sentAt = {};

  const res = ws.connect(`${BASE_URL}/api/v1/ingest/${TOPIC}`, params, function (socket) {
    function sendNext() {
      while (sent < messages && sent - answered < WINDOW) {
        const n = Math.min(BATCH, EVENTS - eventsSent);
        const evs = [];
        for (let i = 0; i < n; i++) {
          evs.push(purchase(r, eventsSent + i));
        }
        eventsSent += n;
        sent++;
        sentAt[sent] = Date.now();
        socket.send(JSON.stringify(BATCH === 1 ? evs[0] : evs));
      }
    }

    socket.on('open', sendNext);
    socket.on('message', function (data) {
      let frame;
      try {
        frame = JSON.parse(data);
      } catch (e) {
        fail(`not a JSON frame: ${data}`);
      }
      const t0 = sentAt[frame.seq];
      if (t0 === undefined) {
        fail(`answer for unknown seq ${frame.seq}: ${data}`);
      }
      delete sentAt[frame.seq];
      ackLatency.add(Date.now() - t0);
      answered++;
      if (frame.error) {
        ackErrors.add(1);
        console.warn(`seq ${frame.seq}: ${frame.error.status} ${frame.error.detail || frame.error.title}`);
      } else {
        ackErrors.add(0);
        acks.add(1);
        eventsAccepted.add(frame.accepted);
      }
      if (answered === messages) {
        socket.close();
        return;
      }
      sendNext();
    });
    socket.on('error', function (e) {
      console.error(`websocket error: ${e.error()}`);
    });
    socket.setTimeout(function () {
      console.warn(`VU ${__VU}: ${answered}/${messages} answered after ${TIMEOUT_MS} ms; closing`);
      socket.close();
    }, TIMEOUT_MS);
  });

  check(res, { 'handshake status is 101': (resp) => resp && resp.status === 101 });
  iterationComplete.add(answered === messages);
}
