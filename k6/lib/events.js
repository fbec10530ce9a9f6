// Shared helpers of the k6 scripts: environment parsing and seeded generators of valid
// events of the built-in topics (page_views, clicks, purchases; docs/DESIGN.md#record-formats). Events
// carry no event_id and no event_time: the server assigns a ULID and the receive time,
// so every request is new (the clean stage deduplicates by event_id).

const COUNTRIES = ['DE', 'FR', 'US', 'GB', 'NL', 'ES', 'IT', 'PL', 'SE', 'JP'];
const DEVICES = ['desktop', 'mobile', 'tablet'];
const CURRENCIES = { DE: 'EUR', FR: 'EUR', NL: 'EUR', ES: 'EUR', IT: 'EUR', US: 'USD', GB: 'GBP', PL: 'PLN', SE: 'SEK', JP: 'JPY' };
const PAGES = ['/', '/search', '/cart', '/checkout', '/c/shoes', '/c/women', '/c/men', '/c/sale'];
const ELEMENTS = ['add_to_cart', 'product_image', 'nav_home', 'search_submit', 'banner', 'checkout'];

/**
 * intEnv reads a positive integer from the environment.
 * @param {string} name
 * @param {number} def
 * @returns {number}
 */
export function intEnv(name, def) {
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

/**
 * authHeaders are the request headers with the bearer token of TOKEN, if set.
 * @param {Record<string, string>} headers
 * @returns {Record<string, string>}
 */
export function authHeaders(headers) {
  const token = __ENV.TOKEN || '';
  if (token) {
    headers.Authorization = `Bearer ${token}`;
  }
  return headers;
}

/**
 * arrivalOptions are the k6 options of a constant-arrival-rate ingest scenario: `rate`
 * requests per second for DURATION (default 30s), VUs from PRE_VUS and MAX_VUS, and
 * thresholds on p95 latency, the failed-request rate (MAX_ERROR_RATE, default 0.01)
 * and the checks.
 * @param {string} name scenario name
 * @param {number} rate requests per second
 * @param {number} p95Ms p95 latency threshold in ms
 * @param {number} preVUs default of PRE_VUS
 * @param {number} maxVUs default of MAX_VUS
 */
export function arrivalOptions(name, rate, p95Ms, preVUs, maxVUs) {
  return {
    scenarios: {
      [name]: {
        executor: 'constant-arrival-rate',
        rate,
        timeUnit: '1s',
        duration: __ENV.DURATION || '30s',
        preAllocatedVUs: intEnv('PRE_VUS', preVUs),
        maxVUs: intEnv('MAX_VUS', maxVUs),
      },
    },
    thresholds: {
      http_req_duration: [`p(95)<${p95Ms}`],
      http_req_failed: [`rate<${parseFloat(__ENV.MAX_ERROR_RATE || '0.01')}`],
      checks: ['rate>0.99'],
    },
    discardResponseBodies: true,
  };
}

/**
 * rng is mulberry32, a small seeded PRNG returning floats in [0, 1).
 * @param {number} seed
 * @returns {() => number}
 */
export function rng(seed) {
  let a = seed >>> 0;
  return function () {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * @template T
 * @param {() => number} r
 * @param {T[]} xs
 * @returns {T}
 */
function pick(r, xs) {
  return xs[Math.floor(r() * xs.length)];
}

/**
 * event returns one valid event of topic (page_views, clicks or purchases).
 * @param {string} topic
 * @param {() => number} r
 * @param {string} tag makes order ids unique
 * @returns {Record<string, string | number>}
 */
export function event(topic, r, tag) {
  const country = pick(r, COUNTRIES);
  const user = 1 + Math.floor(r() * 10000);
  /** @type {Record<string, string | number>} */
  const ev = {
    user_id: `u-${user}`,
    session_id: `s-${user}-${Math.floor(r() * 20)}`,
    country: country,
    device: pick(r, DEVICES),
  };
  switch (topic) {
    case 'purchases':
      ev.order_id = `o-${tag}`;
      ev.amount = Math.round((1 + r() * 499) * 100) / 100;
      ev.currency = CURRENCIES[country];
      ev.items = 1 + Math.floor(r() * 5);
      ev.product_id = `p-${1 + Math.floor(r() * 1000)}`;
      break;
    case 'page_views':
      ev.url = pick(r, PAGES);
      ev.duration_ms = Math.floor(r() * 60000);
      break;
    case 'clicks':
      ev.url = pick(r, PAGES);
      ev.element = pick(r, ELEMENTS);
      ev.x = Math.floor(r() * 1920);
      ev.y = Math.floor(r() * 1080);
      break;
    default:
      throw new Error(`no generator for topic "${topic}" (want page_views, clicks or purchases)`);
  }
  return ev;
}

/**
 * topicMix parses MIX ("purchases=6,page_views=3,clicks=1") into a list where each
 * topic appears as often as its weight.
 * @param {string} mix
 * @returns {string[]}
 */
export function topicMix(mix) {
  /** @type {string[]} */
  const out = [];
  for (const part of mix.split(',')) {
    const [name, w] = part.trim().split('=');
    const n = w === undefined ? 1 : parseInt(w, 10);
    if (!name || !(n >= 0)) {
      throw new Error(`MIX: bad entry "${part}"`);
    }
    for (let i = 0; i < n; i++) {
      out.push(name);
    }
  }
  if (out.length === 0) {
    throw new Error(`MIX: no topic with a weight > 0 in "${mix}"`);
  }
  return out;
}
