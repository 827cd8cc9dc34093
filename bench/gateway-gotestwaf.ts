// How the WAF gateway does on an independent attack set: GoTestWAF's test cases (not shipped
// here; point --testcases at a checkout's testcases/ directory). A measurement, not a test:
//
//   node --import tsx bench/gateway-gotestwaf.ts --testcases ~/gotestwaf/testcases --url http://127.0.0.1:8081
//
// Start the API and `tillpoint gateway start` first. Every payload x encoder x placeholder of
// each YAML file becomes one request, built the way GoTestWAF builds it (placeholders URLParam,
// URLPath, Header, UserAgent, JSONBody, JSONRequest, HTMLForm, HTMLMultipartForm, RequestBody,
// SOAPBody, XMLBody; encoders Plain, URL, Base64, Base64Flat, JSUnicode, XMLEntity; GraphQL,
// gRPC and raw requests are counted as skipped). Blocked = the gateway's 403 request_blocked
// (or its 400 for a body it cannot parse, reported apart). The false-positive files (a
// `false-pos` directory) count the other way round. Prints a JSON summary.

import { parseArgs } from 'node:util';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';

const { values: args } = parseArgs({
  options: {
    testcases: { type: 'string' },
    url: { type: 'string', default: 'http://127.0.0.1:8081' },
    key: { type: 'string', default: 'tp_gotestwaf_placeholder_key_0000000000' },
    concurrency: { type: 'string', default: '8' },
    verbose: { type: 'boolean', default: false },
  },
});
if (!args.testcases) {
  process.stderr.write(
    'usage: bench/gateway-gotestwaf.ts --testcases <gotestwaf>/testcases [--url http://127.0.0.1:8081] [--key API_KEY]\n',
  );
  process.exit(2);
}

// ---- the YAML subset GoTestWAF's test cases use: top-level keys holding lists of scalars.
function unquote(s: string): string {
  if (s.startsWith("'")) return s.slice(1, s.lastIndexOf("'")).replace(/''/g, "'");
  if (s.startsWith('"')) {
    const body = s.slice(1, s.lastIndexOf('"'));
    return body.replace(/\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)/g, (_m, e: string) => {
      if (e[0] === 'x' || e[0] === 'u' || e[0] === 'U') return String.fromCodePoint(parseInt(e.slice(1), 16));
      return (
        ({ n: '\n', r: '\r', t: '\t', '0': '\0', '"': '"', '\\': '\\', '/': '/', ' ': ' ' } as Record<string, string>)[
          e
        ] ?? e
      );
    });
  }
  return s.trim();
}
function parseCase(text: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  let key = '';
  for (const line of text.split('\n')) {
    const k = /^([A-Za-z_]+):\s*(.*)$/.exec(line);
    if (k) {
      key = k[1];
      out[key] = k[2] ? [unquote(k[2])] : [];
      continue;
    }
    const item = /^\s+-\s(.*)$/.exec(line);
    if (item && key) out[key].push(unquote(item[1]));
    else if (item === null && /^\s+-$/.test(line) && key) out[key].push('');
  }
  return out;
}

// ---- encoders (internal/payload/encoder in GoTestWAF)
const ENCODERS: Record<string, (s: string) => string> = {
  Plain: (s) => s,
  URL: (s) =>
    encodeURIComponent(s)
      .replace(/%20/g, '+')
      .replace(/[!'()*~]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase()),
  Base64: (s) => Buffer.from(s).toString('base64'),
  Base64Flat: (s) => Buffer.from(s).toString('base64').replace(/=/g, ''),
  JSUnicode: (s) =>
    [...Buffer.from(s, 'utf16le')]
      .reduce<string[]>(
        (acc, _b, i, arr) =>
          i % 2
            ? acc
            : [...acc, `\\u${arr[i + 1].toString(16).padStart(2, '0')}${arr[i].toString(16).padStart(2, '0')}`],
        [],
      )
      .join(''),
  XMLEntity: (s) => [...s].map((c) => `&#x${c.codePointAt(0)!.toString(16)};`).join(''),
};

// ---- placeholders (internal/payload/placeholder): where the payload goes.
const rnd = () => randomBytes(4).toString('hex');
/** What cannot stand raw in a request line is escaped; everything else is sent as is. */
const rawUrl = (s: string) => s.replace(/[\x00-\x20\x7f-\uffff#]/g, (c) => encodeURIComponent(c));

interface Req {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}
const PLACEHOLDERS: Record<string, (p: string) => Req | undefined> = {
  URLParam: (p) => ({ method: 'GET', path: `/v1/payments?${rnd()}=${rawUrl(p)}`, headers: {} }),
  URLPath: (p) => ({ method: 'GET', path: `/v1/payments/${rawUrl(p)}`, headers: {} }),
  Header: (p) =>
    /^[\t\x20-\x7e\x80-\xff]*$/.test(p)
      ? { method: 'GET', path: '/v1/payments', headers: { [`x-${rnd()}`]: p } }
      : undefined,
  UserAgent: (p) =>
    /^[\t\x20-\x7e\x80-\xff]*$/.test(p)
      ? { method: 'GET', path: '/v1/payments', headers: { 'user-agent': p } }
      : undefined,
  JSONBody: (p) => ({ method: 'POST', path: '/v1/payments', headers: { 'content-type': 'application/json' }, body: p }),
  JSONRequest: (p) => ({
    method: 'POST',
    path: '/v1/payments',
    headers: { 'content-type': 'application/json' },
    body: `{"test": true, "${rnd()}": "${p}"}`,
  }),
  HTMLForm: (p) => ({
    method: 'POST',
    path: '/v1/payments',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `${rnd()}=${p}`,
  }),
  HTMLMultipartForm: (p) => {
    const b = `----gotestwaf${rnd()}`;
    return {
      method: 'POST',
      path: '/v1/payments',
      headers: { 'content-type': `multipart/form-data; boundary=${b}` },
      body: `--${b}\r\nContent-Disposition: form-data; name="${rnd()}"\r\n\r\n${p}\r\n--${b}--\r\n`,
    };
  },
  RequestBody: (p) => ({ method: 'POST', path: '/v1/payments', headers: {}, body: p }),
  SOAPBody: (p) => ({
    method: 'POST',
    path: '/v1/payments',
    headers: { 'content-type': 'text/xml', soapaction: 'urn:test' },
    body: `<?xml version="1.0"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body><t>${p}</t></soap:Body></soap:Envelope>`,
  }),
  XMLBody: (p) => ({ method: 'POST', path: '/v1/payments', headers: { 'content-type': 'application/xml' }, body: p }),
};

function send(base: string, r: Req): Promise<{ status: number; code?: string }> {
  return new Promise((resolve) => {
    const u = new URL(base);
    const headers: Record<string, string> = {
      authorization: `Bearer ${args.key}`,
      'user-agent': 'gotestwaf-replay',
      accept: '*/*',
      ...r.headers,
    };
    if (r.body !== undefined) headers['content-length'] = String(Buffer.byteLength(r.body));
    let req;
    try {
      req = request({ host: u.hostname, port: u.port, method: r.method, path: r.path, headers }, (res) => {
        let t = '';
        res.on('data', (d) => (t += d));
        res.on('end', () => {
          let code: string | undefined;
          try {
            code = JSON.parse(t).error?.code;
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, code });
        });
      });
    } catch {
      return resolve({ status: -1 }); // Node refused to send it (invalid characters): not sent
    }
    req.on('error', () => resolve({ status: 0 }));
    if (r.body !== undefined) req.write(r.body);
    req.end();
  });
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? walk(p) : /\.ya?ml$/.test(f) ? [p] : [];
  });
}

async function main() {
  const files = walk(args.testcases!).sort();
  type Tally = {
    requests: number;
    blocked: number;
    refused_400: number;
    passed: number;
    not_sent: number;
    skipped: number;
  };
  const blank = (): Tally => ({ requests: 0, blocked: 0, refused_400: 0, passed: 0, not_sent: 0, skipped: 0 });
  const attacks = blank();
  const falsePos = blank();
  const bySet: Record<string, Tally> = {};
  const byPlaceholder: Record<string, Tally> = {};
  const byEncoder: Record<string, Tally> = {};
  const passedSamples: string[] = [];
  const jobs: { set: string; fp: boolean; ph: string; enc: string; req: Req; desc: string }[] = [];
  for (const f of files) {
    const set = relative(args.testcases!, f);
    const fp = set.startsWith('false-pos');
    const c = parseCase(readFileSync(f, 'utf8'));
    for (const ph of c.placeholder ?? []) {
      const make = PLACEHOLDERS[ph];
      for (const enc of c.encoder ?? ['Plain']) {
        for (const payload of c.payload ?? []) {
          const t = (bySet[set] ??= blank());
          const tp = (byPlaceholder[fp ? `false-pos ${ph}` : ph] ??= blank());
          const te = (byEncoder[fp ? `false-pos ${enc}` : enc] ??= blank());
          const req = ph in PLACEHOLDERS && enc in ENCODERS ? make(ENCODERS[enc](payload)) : undefined;
          if (!req) {
            for (const x of [t, tp, te, fp ? falsePos : attacks]) x.skipped++;
            continue;
          }
          jobs.push({ set, fp, ph, enc, req, desc: `${set} ${ph}/${enc}: ${payload.slice(0, 80)}` });
        }
      }
    }
  }
  let next = 0;
  await Promise.all(
    Array.from({ length: Number(args.concurrency) }, async () => {
      while (next < jobs.length) {
        const j = jobs[next++];
        const r = await send(args.url!, j.req);
        for (const x of [
          bySet[j.set],
          byPlaceholder[j.fp ? `false-pos ${j.ph}` : j.ph],
          byEncoder[j.fp ? `false-pos ${j.enc}` : j.enc],
          j.fp ? falsePos : attacks,
        ]) {
          x.requests++;
          if (r.status === -1) x.not_sent++;
          else if (r.status === 403 && r.code === 'request_blocked') x.blocked++;
          else if (r.status === 400 && r.code === 'malformed_json') x.refused_400++;
          else x.passed++;
        }
        const stopped = r.status === 403 || (r.status === 400 && r.code === 'malformed_json');
        if (!j.fp && !stopped && r.status !== -1 && passedSamples.length < 200)
          passedSamples.push(`${r.status} ${j.desc}`);
        if (j.fp && stopped && args.verbose) process.stderr.write(`false positive: ${j.desc}\n`);
      }
    }),
  );
  const pct = (a: number, b: number) => (b ? Math.round((1000 * a) / b) / 10 : null);
  const sent = (t: Tally) => t.requests - t.not_sent;
  // The placeholders a Tillpoint client can use at all: the API takes JSON, query and path, headers.
  const accepted = ['URLParam', 'URLPath', 'Header', 'UserAgent', 'JSONBody', 'JSONRequest', 'RequestBody'];
  const acc = accepted.map((k) => byPlaceholder[k]).filter(Boolean);
  const accStopped = acc.reduce((a, t) => a + t.blocked + t.refused_400, 0);
  const accSent = acc.reduce((a, t) => a + sent(t), 0);
  const summary = {
    attacks_in_placeholders_the_api_accepts: {
      placeholders: accepted,
      sent: accSent,
      stopped: accStopped,
      stopped_pct: pct(accStopped, accSent),
    },
    attacks: {
      ...attacks,
      blocked_pct: pct(attacks.blocked + attacks.refused_400, sent(attacks)),
      blocked_403_only_pct: pct(attacks.blocked, sent(attacks)),
    },
    false_positives: { ...falsePos, false_positive_pct: pct(falsePos.blocked + falsePos.refused_400, sent(falsePos)) },
    by_placeholder: Object.fromEntries(
      Object.entries(byPlaceholder).map(([k, t]) => [
        k,
        { ...t, stopped_pct: pct(t.blocked + t.refused_400, sent(t)) },
      ]),
    ),
    by_encoder: Object.fromEntries(
      Object.entries(byEncoder).map(([k, t]) => [k, { ...t, stopped_pct: pct(t.blocked + t.refused_400, sent(t)) }]),
    ),
    by_set: Object.fromEntries(
      Object.entries(bySet).map(([k, t]) => [k, { ...t, stopped_pct: pct(t.blocked + t.refused_400, sent(t)) }]),
    ),
  };
  process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
  if (args.verbose) for (const s of passedSamples) process.stderr.write(`passed: ${s}\n`);
}

void main();
