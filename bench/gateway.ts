// WAF gateway benchmark: `npm run bench:gateway [-- options]`.
//
// What the gateway (nginx + ModSecurity v3 + OWASP CRS, as `tillpoint gateway start` runs it)
// costs: the same requests sent straight to the API and through the gateway, for three kinds of
// request: a health probe (the proxy and the rules with nearly no API work), an authenticated
// read, and a payment creation (a JSON body the CRS parses and inspects). For each:
//   - latency at a fixed, moderate arrival rate (open loop: no coordinated omission), p50 and
//     p99, and what the gateway adds to each;
//   - the peak, closed loop with N clients: requests per second and the ratio gateway/direct.
// Prints one JSON line on stdout (and appends it to bench/results/gateway.jsonl); progress on
// stderr. Needs nginx, libnginx-mod-http-modsecurity and modsecurity-crs.

import { parseArgs } from 'node:util';
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { startTillpoint, killAll, ROOT, type BenchProc } from './lib/procs.ts';
import { Recorder, Errors, Http, closedLoop, openLoop, now, round } from './lib/load.ts';
import { freePort } from '../src/platform/freePort.ts';

const USAGE = `Usage: npm run bench:gateway -- [options]

  --duration S     measured seconds for each run (default 6)
  --warmup S       unmeasured seconds before each kind of request (default 2)
  --clients N      concurrent clients in the closed-loop (peak) runs (default 16)
  --rate R         arrivals per second in the fixed-rate (latency) runs (default 200)
  --workers N      nginx worker processes (default: auto, one per core)
  --paranoia N     CRS paranoia level (default 1)
  --results FILE   where to append the JSON line (default bench/results/gateway.jsonl)
  --no-save        print the JSON line only
  --keep           keep the data directory and the logs
  --help           this text`;

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '6' },
    warmup: { type: 'string', default: '2' },
    clients: { type: 'string', default: '16' },
    rate: { type: 'string', default: '200' },
    workers: { type: 'string', default: 'auto' },
    paranoia: { type: 'string', default: '1' },
    results: { type: 'string', default: join(ROOT, 'bench/results/gateway.jsonl') },
    'no-save': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(USAGE + '\n');
  process.exit(0);
}
const DURATION = Number(args.duration) * 1000;
const WARMUP = Number(args.warmup) * 1000;
const CLIENTS = Number(args.clients);
const RATE = Number(args.rate);
const log = (s: string) => process.stderr.write(s + '\n');

interface Kind {
  name: string;
  method: 'GET' | 'POST';
  path: () => string;
  body?: () => unknown;
  ok: number;
}

interface PathResult {
  peak: { rps: number; p50_ms: number | null; p99_ms: number | null; errors: Record<string, number> };
  fixed_rate: {
    rate: number;
    p50_ms: number | null;
    p99_ms: number | null;
    dropped: number;
    errors: Record<string, number>;
  };
}

async function measure(http: Http, kind: Kind): Promise<PathResult> {
  const send = async (rec: Recorder | undefined, errors: Errors, start = now()) => {
    const r = await http.request(kind.method, kind.path(), kind.body?.());
    if (r.status !== kind.ok)
      errors.add(`${r.status} ${(r.body as { error?: { code?: string } })?.error?.code ?? ''}`.trim());
    else rec?.add(now() - start);
  };
  const warm = new Errors();
  await closedLoop(CLIENTS, now() + WARMUP, () => send(undefined, warm));

  const fixedRec = new Recorder();
  const fixedErr = new Errors();
  const ol = await openLoop(RATE, DURATION, CLIENTS * 8, (due) => send(fixedRec, fixedErr, due));

  const peakRec = new Recorder();
  const peakErr = new Errors();
  const t0 = now();
  await closedLoop(CLIENTS, t0 + DURATION, () => send(peakRec, peakErr));
  const secs = (now() - t0) / 1000;
  return {
    peak: {
      rps: round(peakRec.count / secs, 0),
      p50_ms: peakRec.percentile(50),
      p99_ms: peakRec.percentile(99),
      errors: peakErr.counts,
    },
    fixed_rate: {
      rate: RATE,
      p50_ms: fixedRec.percentile(50),
      p99_ms: fixedRec.percentile(99),
      dropped: ol.dropped,
      errors: fixedErr.counts,
    },
  };
}

async function main() {
  const workDir = mkdtempSync(join(tmpdir(), 'tillpoint-bench-gw-'));
  chmodSync(workDir, 0o755); // nginx started as root drops its workers to www-data: they must reach it
  const dataDir = join(workDir, 'data');
  mkdirSync(dataDir, { mode: 0o755 });
  const procs: BenchProc[] = [];
  try {
    const apiPort = await freePort();
    const gwPort = await freePort();
    const env: Record<string, string> = {
      NODE_ENV: 'development', // the demo data (a partner key, terminals) is what the benchmark uses
      HOST: '127.0.0.1',
      PORT: String(apiPort),
      PUBLIC_URL: `http://127.0.0.1:${gwPort}`,
      BANK_SIM_URL: `http://127.0.0.1:${apiPort}/sim`,
      TILLPOINT_DATA_DIR: dataDir,
      HTTP_TRUST_PROXY: '127.0.0.1',
      LOG_LEVEL: 'warn',
      MQTT_PORT: 'off',
      MQTTS_PORT: 'off',
    };
    const api = await startTillpoint({
      name: 'api',
      args: ['serve', '--role', 'api'],
      env,
      ready: /Demo:/,
      logDir: workDir,
    });
    procs.push(api);
    const gw = await startTillpoint({
      name: 'gateway',
      args: [
        'gateway',
        'start',
        '--listen',
        `127.0.0.1:${gwPort}`,
        '--upstream',
        `http://127.0.0.1:${apiPort}`,
        '--workers',
        args.workers!,
        '--paranoia',
        args.paranoia!,
        '--no-access-log',
      ],
      env,
      ready: /gateway is ready/,
      logDir: workDir,
    });
    procs.push(gw);
    const crs = /OWASP CRS ([0-9.]+)/.exec(readFileSync(gw.logFile, 'utf8'))?.[1] ?? 'unknown';
    const demo = JSON.parse(readFileSync(join(dataDir, 'demo.json'), 'utf8')) as {
      api_key: string;
      terminal_ids: string[];
    };
    log(`api pid ${api.pid} on :${apiPort}, gateway (nginx + ModSecurity + CRS ${crs}) on :${gwPort}`);

    const auth = { authorization: `Bearer ${demo.api_key}`, 'user-agent': 'tillpoint-bench/1' };
    const direct = new Http(`http://127.0.0.1:${apiPort}`, CLIENTS * 8, auth);
    const through = new Http(`http://127.0.0.1:${gwPort}`, CLIENTS * 8, auth);
    const created = await direct.request('POST', '/v1/payments', {
      terminal_id: demo.terminal_ids[0],
      amount: 100,
      currency: 'INR',
      method: 'upi_qr',
    });
    if (created.status !== 201)
      throw new Error(`could not create a payment to read: ${created.status} ${JSON.stringify(created.body)}`);
    let n = 0;
    const kinds: Kind[] = [
      { name: 'health', method: 'GET', path: () => '/healthz', ok: 200 },
      { name: 'read_payment', method: 'GET', path: () => `/v1/payments/${created.body.id}`, ok: 200 },
      {
        name: 'create_payment',
        method: 'POST',
        path: () => '/v1/payments',
        body: () => ({
          terminal_id: demo.terminal_ids[n++ % demo.terminal_ids.length],
          amount: 14900,
          currency: 'INR',
          method: 'upi_qr',
          note: 'Bill #42: rice & dal',
        }),
        ok: 201,
      },
    ];

    const results: Record<string, unknown> = {};
    for (const k of kinds) {
      log(`${k.name}: direct…`);
      const d = await measure(direct, k);
      log(`${k.name}: through the gateway…`);
      const g = await measure(through, k);
      const diff = (a: number | null, b: number | null) => (a === null || b === null ? null : round(a - b));
      results[k.name] = {
        direct: d,
        gateway: g,
        added_p50_ms: diff(g.fixed_rate.p50_ms, d.fixed_rate.p50_ms),
        added_p99_ms: diff(g.fixed_rate.p99_ms, d.fixed_rate.p99_ms),
        peak_rps_ratio: d.peak.rps ? round(g.peak.rps / d.peak.rps) : null,
      };
      log(
        `  direct  ${d.peak.rps} req/s peak; at ${RATE}/s p50 ${d.fixed_rate.p50_ms} ms p99 ${d.fixed_rate.p99_ms} ms\n` +
          `  gateway ${g.peak.rps} req/s peak; at ${RATE}/s p50 ${g.fixed_rate.p50_ms} ms p99 ${g.fixed_rate.p99_ms} ms`,
      );
    }
    await direct.close();
    await through.close();

    const line = {
      bench: 'gateway',
      at: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        cpu_model: cpus()[0]?.model,
        mem_gb: round(totalmem() / 2 ** 30, 1),
        node: process.version,
      },
      settings: {
        duration_s: DURATION / 1000,
        clients: CLIENTS,
        fixed_rate: RATE,
        nginx_workers: args.workers,
        paranoia: Number(args.paranoia),
        crs,
      },
      results,
    };
    process.stdout.write(JSON.stringify(line) + '\n');
    if (!args['no-save']) {
      mkdirSync(resolve(args.results!, '..'), { recursive: true });
      appendFileSync(args.results!, JSON.stringify(line) + '\n');
    }
  } finally {
    for (const p of procs.reverse()) await p.stop();
    if (args.keep) log(`kept ${workDir}`);
    else rmSync(workDir, { recursive: true, force: true });
  }
}

process.on('SIGINT', () => {
  killAll();
  process.exit(130);
});
main().catch((e) => {
  killAll();
  process.stderr.write(`bench:gateway: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
