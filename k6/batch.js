// k6 constant-arrival-rate load of batch ingest: POST /api/v1/events/{topic} with a JSON
// array of BATCH events (or NDJSON lines with NDJSON=1) per request (docs/API.md#send-events).
// RATE is in events per second; requests per second are RATE/BATCH. Requests start on
// schedule whatever the answers do (open model). The thresholds fail the run when p95
// latency or the error rate is too high.
//
//   k6 run k6/batch.js
//   k6 run -e RATE=100000 -e BATCH=100 -e DURATION=1m k6/batch.js
//   k6 run -e BASE_URL=https://ingest.example.com -e TOKEN=$JWT -e NDJSON=1 k6/batch.js
//
// Environment: BASE_URL (http://127.0.0.1:8080), RATE events per second (10000),
// BATCH events per request (100), NDJSON (unset: JSON array), DURATION (30s), TOKEN
// (bearer token; unset: none), MIX topic weights (purchases=6,page_views=3,clicks=1),
// SEED (42), P95_MS threshold (200), MAX_ERROR_RATE (0.01), PRE_VUS (50), MAX_VUS (500).

import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { arrivalOptions, authHeaders, event, intEnv, rng, topicMix } from './lib/events.js';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const RATE = intEnv('RATE', 10000);
const BATCH = intEnv('BATCH', 100);
const NDJSON = (__ENV.NDJSON || '') !== '';
const TOPICS = topicMix(__ENV.MIX || 'purchases=6,page_views=3,clicks=1');
const SEED = intEnv('SEED', 42);
const P95_MS = intEnv('P95_MS', 200);

// Requests per second; at least one.
export const options = arrivalOptions('batch', Math.max(1, Math.round(RATE / BATCH)), P95_MS, 50, 500);

const eventsAccepted = new Counter('events_accepted');
const headers = authHeaders({ 'Content-Type': NDJSON ? 'application/x-ndjson' : 'application/json' });
let r = rng(SEED);

export default function () {
  if (__ITER === 0) {
    r = rng(SEED * 1000003 + __VU * 7919);
  }
  const topic = TOPICS[__ITER % TOPICS.length];
  const evs = [];
  for (let i = 0; i < BATCH; i++) {
    evs.push(event(topic, r, `${__VU}-${__ITER}-${i}`));
  }
  const body = NDJSON ? evs.map((e) => JSON.stringify(e)).join('\n') + '\n' : JSON.stringify(evs);
  const res = http.post(`${BASE_URL}/api/v1/events/${topic}`, body, { headers: headers, tags: { topic: topic } });
  if (check(res, { 'status is 202': (x) => x.status === 202 })) {
    eventsAccepted.add(BATCH);
  }
}
