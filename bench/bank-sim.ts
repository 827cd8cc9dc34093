// The bank simulator's own CPU per payment, without Tillpoint: `node --import tsx bench/bank-sim.ts [options]`.
//
// `npm run bench:payments` charges the simulator's CPU to every payment it measures (bench/README.md);
// this measures that share alone, to make it cheaper (bench/PROFILE.md, "Session 7"). The simulator
// runs as bench:payments runs it (`tillpoint bank-sim --latency-ms 0 --approve 1`, its own process);
// this process plays Tillpoint: it registers a signed QR intent (`POST /sim/v1/intents`, as the
// simbank connector does), pays it as the customer (`POST /sim/v1/customer-payments`) and answers
// the simulator's signed callback on a plain node:http server (200, not verified: Tillpoint's cost
// is not what is measured). Closed loop, `--clients` at once. Prints one JSON line: payments per
// second and the simulator's CPU ms per payment (from /proc, over the measured seconds).
//
//   --duration S    measured seconds (default 10)
//   --warmup S      seconds before (default 3)
//   --clients N     concurrent payments (default 16, as bench:payments)
//   --checkout DIR  run the simulator of another checkout (e.g. a worktree of an older commit)
//   --cpu-prof DIR  the simulator under node --cpu-prof (bench/profile-summary.ts reads it)

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import { freePort } from '../src/platform/freePort.ts';
import { signRequest } from '../src/platform/signing.ts';
import { Http, closedLoop, round } from './lib/load.ts';
import { ROOT, cpuSeconds } from './lib/procs.ts';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    clients: { type: 'string', default: '16' },
    checkout: { type: 'string' },
    'cpu-prof': { type: 'string' },
  },
});
const DURATION = Number(args.duration);
const WARMUP = Number(args.warmup);
const CLIENTS = Number(args.clients);
for (const [k, v] of Object.entries({ duration: DURATION, warmup: WARMUP, clients: CLIENTS }))
  if (!Number.isInteger(v) || v < 1 || v > 3600) throw new Error(`--${k} must be an integer 1..3600`);
const checkout = args.checkout ? resolve(args.checkout) : ROOT;

const secret = randomBytes(24).toString('hex');
const simPort = await freePort();

// Tillpoint's callback endpoint, reduced to answering.
let callbacks = 0;
const receiver = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    callbacks++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"received":true}');
  });
});
await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
const callbackUrl = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/v1/banks/SIMBANK/callbacks`;

const child = spawn(
  process.execPath,
  [
    ...(args['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${resolve(args['cpu-prof'])}`] : []),
    join(checkout, 'bin', 'tillpoint.mjs'),
    ...['bank-sim', '--port', String(simPort), '--latency-ms', '0', '--approve', '1'],
    ...['--decline', '0', '--pending', '0', '--timeout', '0'],
  ],
  {
    cwd: checkout,
    env: { ...process.env, BANK_SIM_SECRET: secret, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  },
);
await new Promise<void>((ready, fail) => {
  child.stdout!.on('data', (d) => /listening/.test(String(d)) && ready());
  child.on('exit', (code) => fail(new Error(`bank-sim exited ${code} before it listened`)));
});

const sim = new Http(`http://127.0.0.1:${simPort}`, CLIENTS * 2);
const tag = randomBytes(4).toString('hex').toUpperCase();
let seq = 0;
let paid = 0;

async function payment() {
  const txnRef = `TP${tag}${seq++}`;
  const intent = JSON.stringify({
    txn_ref: txnRef,
    amount: '149.00',
    currency: 'INR',
    payee_vpa: 'bench.store@simbank',
    payee_name: 'Bench Store',
    mcc: '5411',
    expires_at: new Date(Date.now() + 300_000).toISOString(),
    callback_url: callbackUrl,
  });
  // Signed as the simbank connector signs it, body byte for byte.
  const r = await sim.pool.request({
    method: 'POST',
    path: '/sim/v1/intents',
    headers: { 'content-type': 'application/json', ...signRequest(secret, intent) },
    body: intent,
  });
  const text = await r.body.text();
  if (r.statusCode !== 200) throw new Error(`intent: ${r.statusCode} ${text}`);
  const p = await sim.request('POST', '/sim/v1/customer-payments', {
    upi_uri: `upi://pay?pa=bench.store@simbank&pn=Bench%20Store&tr=${txnRef}&am=149.00&cu=INR`,
    payer_vpa: 'bench.payer@okaxis',
  });
  if (p.status !== 200 || !p.body?.callback?.delivered) throw new Error(`pay: ${p.status} ${JSON.stringify(p.body)}`);
  paid++;
}

const load0 = loadavg()[0];
await closedLoop(CLIENTS, performance.now() + WARMUP * 1000, payment);
const paid0 = paid;
const cpu0 = cpuSeconds(child.pid!) ?? 0;
const t0 = performance.now();
await closedLoop(CLIENTS, t0 + DURATION * 1000, payment);
const cpu1 = cpuSeconds(child.pid!) ?? 0;
const seconds = (performance.now() - t0) / 1000;
const n = paid - paid0;
await sim.close();
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
receiver.close();
process.stdout.write(
  `${JSON.stringify({
    benchmark: 'bank-sim',
    checkout,
    payments: n,
    payments_per_s: round(n / seconds, 1),
    sim_cpu_ms_per_payment: round(((cpu1 - cpu0) * 1000) / n, 3),
    sim_cpu_pct: round(((cpu1 - cpu0) / seconds) * 100, 0),
    callbacks_received: callbacks,
    clients: CLIENTS,
    load_average: [round(load0, 2), round(loadavg()[0], 2)],
  })}\n`,
);
