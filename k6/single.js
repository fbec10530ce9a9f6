// k6 constant-arrival-rate load of single-event ingest: POST /api/v1/events/{topic} with
// one JSON object per request (docs/API.md#send-events). Requests start on schedule whatever the
// answers do (open model), so a slow server shows up as latency and dropped iterations,
// not as a lower rate. The thresholds fail the run when p95 latency or the error rate
// is too high.
//
//   k6 run k6/single.js
//   k6 run -e RATE=20000 -e DURATION=1m -e MAX_VUS=2000 k6/single.js
//   k6 run -e BASE_URL=https://ingest.example.com -e TOKEN=$JWT k6/single.js
//
// Environment: BASE_URL (http://127.0.0.1:8080), RATE events (= requests) per second
// (1000), DURATION (30s), TOKEN (bearer token; unset: none), MIX topic weights
// (purchases=6,page_views=3,clicks=1), SEED (42), P95_MS threshold (100),
// MAX_ERROR_RATE (0.01), PRE_VUS (100), MAX_VUS (1000).

import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { arrivalOptions, authHeaders, event, intEnv, rng, topicMix } from './lib/events.js';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const RATE = intEnv('RATE', 1000);
const TOPICS = topicMix(__ENV.MIX || 'purchases=6,page_views=3,clicks=1');
const SEED = intEnv('SEED', 42);
const P95_MS = intEnv('P95_MS', 100);

export const options = arrivalOptions('single', RATE, P95_MS, 100, 1000);

const eventsAccepted = new Counter('events_accepted');
const headers = authHeaders({ 'Content-Type': 'application/json' });
let r = rng(SEED);

export default function () {
  if (__ITER === 0) {
    r = rng(SEED * 1000003 + __VU * 7919);
  }
  const topic = TOPICS[__ITER % TOPICS.length];
  const body = JSON.stringify(event(topic, r, `${__VU}-${__ITER}`));
  const res = http.post(`${BASE_URL}/api/v1/events/${topic}`, body, { headers: headers, tags: { topic: topic } });
  if (check(res, { 'status is 202': (x) => x.status === 202 })) {
    eventsAccepted.add(1);
  }
}
