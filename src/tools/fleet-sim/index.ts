import { connectTerminal, TerminalRequestError, type TerminalClient } from '../terminal-sdk/index.ts';

// The terminal simulator: N terminals connect to the gateway over MQTT, take UPI QR payments at
// R per second between them, and a simulated customer pays each one through the bank simulator.
// What it measures is what a shopkeeper feels: the round trip of payment.create over MQTT, and
// how many "payment received" events come back.
//
// Terminals are provisioned through the HTTP API (the demo's partner key): terminals labelled
// "sim-0001"… in the merchant's first store are reused from run to run, and each gets a fresh
// development MQTT secret. So it needs a gateway with the development listener (not production).

export interface SimulationOptions {
  count: number;
  /** Payments per second across all terminals. */
  rate: number;
  durationSeconds: number;
  apiUrl: string;
  apiKey: string;
  mqttUrl: string;
  merchantId: string;
  /** Where the simulated customer pays: the bank simulator. Default `<apiUrl>/sim`. */
  bankSimUrl?: string;
  payerVpa?: string;
  requestTimeoutMs?: number;
  /** Called about four times a second. */
  onProgress?(p: SimulationProgress): void;
  /** Terminals connecting at once. */
  connectConcurrency?: number;
}

export interface SimulationProgress {
  phase: 'provisioning' | 'connecting' | 'running' | 'draining';
  elapsedSeconds: number;
  durationSeconds: number;
  provisioned: number;
  connected: number;
  sent: number;
  ok: number;
  failed: number;
  events: number;
}

export interface SimulationSummary {
  terminals: number;
  connected: number;
  connect_failed: number;
  sent: number;
  ok: number;
  failed: number;
  errors: Record<string, number>;
  round_trip_ms: { p50: number | null; p95: number | null; p99: number | null; max: number | null };
  events_received: number;
  paid: number;
  paid_event_received: number;
  duration_s: number;
  achieved_rate: number;
}

export function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return Math.round(sorted[i] * 10) / 10;
}

async function api(o: SimulationOptions, method: string, path: string, body?: unknown) {
  const r = await fetch(o.apiUrl.replace(/\/$/, '') + path, {
    method,
    headers: {
      authorization: `Bearer ${o.apiKey}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  const json = text ? JSON.parse(text) : undefined;
  if (!r.ok)
    throw new Error(
      `${method} ${path}: ${r.status} ${json?.error?.code ?? ''} ${json?.error?.message ?? text.slice(0, 200)}`,
    );
  return json;
}

/** Finds or creates the simulated terminals and issues each a development MQTT secret. */
async function provision(
  o: SimulationOptions,
  progress: (n: number) => void,
): Promise<{ id: string; password: string }[]> {
  const stores = await api(o, 'GET', `/v1/merchants/${o.merchantId}/stores?limit=1`);
  const storeId: string | undefined = stores.data?.[0]?.id;
  if (!storeId) throw new Error(`merchant ${o.merchantId} has no store to put simulated terminals in`);
  const existing = new Map<string, string>();
  let cursor: string | null = null;
  do {
    const page: { data: { id: string; label: string | null; status: string }[]; next_cursor: string | null } =
      await api(
        o,
        'GET',
        `/v1/terminals?merchant_id=${o.merchantId}&store_id=${storeId}&status=active&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
    for (const t of page.data) if (t.label && /^sim-\d{4,}$/.test(t.label)) existing.set(t.label, t.id);
    cursor = page.next_cursor;
  } while (cursor && existing.size < o.count);
  const out: { id: string; password: string }[] = [];
  const labels = Array.from({ length: o.count }, (_, i) => `sim-${String(i + 1).padStart(4, '0')}`);
  await pool(labels, 16, async (label) => {
    let id = existing.get(label);
    if (!id) id = (await api(o, 'POST', '/v1/terminals', { store_id: storeId, label })).id as string;
    const cred = await api(o, 'POST', `/v1/terminals/${id}/mqtt-credentials`);
    out.push({ id, password: cred.mqtt_password });
    progress(out.length);
  });
  return out;
}

/** Runs `fn` over `items` with at most `n` at a time. */
async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

export async function runSimulation(o: SimulationOptions): Promise<SimulationSummary> {
  const p: SimulationProgress = {
    phase: 'provisioning',
    elapsedSeconds: 0,
    durationSeconds: o.durationSeconds,
    provisioned: 0,
    connected: 0,
    sent: 0,
    ok: 0,
    failed: 0,
    events: 0,
  };
  const report = () => o.onProgress?.({ ...p });
  const ticker = setInterval(report, 250);
  const clients: TerminalClient[] = [];
  const errors: Record<string, number> = {};
  const rtts: number[] = [];
  const ours = new Set<string>();
  const paidEvents = new Set<string>();
  let connectFailed = 0;
  let paid = 0;
  const bankSim = (o.bankSimUrl ?? `${o.apiUrl.replace(/\/$/, '')}/sim`).replace(/\/$/, '');
  try {
    const creds = await provision(o, (n) => (p.provisioned = n));
    p.phase = 'connecting';
    await pool(creds, o.connectConcurrency ?? 50, async (c) => {
      try {
        const t = await connectTerminal({
          url: o.mqttUrl,
          terminalId: c.id,
          password: c.password,
          requestTimeoutMs: o.requestTimeoutMs ?? 5000,
          retries: 1,
        });
        t.on('payment.updated', (e) => {
          p.events++;
          if (e.body.status === 'succeeded' && ours.has(e.body.payment_id)) paidEvents.add(e.body.payment_id);
        });
        clients.push(t);
        p.connected++;
      } catch {
        connectFailed++;
      }
    });
    if (clients.length === 0) throw new Error(`no terminal could connect to ${o.mqttUrl}`);

    p.phase = 'running';
    const inFlight = new Set<Promise<void>>();
    const one = async (t: TerminalClient) => {
      const amount = 100 * (1 + Math.floor(Math.random() * 2000)); // ₹1 to ₹2,000
      const started = performance.now();
      p.sent++;
      try {
        const payment = await t.createPayment({ method: 'upi_qr', amount, currency: 'INR', note: 'simulated sale' });
        rtts.push(performance.now() - started);
        p.ok++;
        ours.add(payment.id);
        // The customer scans the QR and pays, through the bank simulator.
        const r = await fetch(`${bankSim}/v1/customer-payments`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            upi_uri: payment.upi_uri,
            payer_vpa: o.payerVpa ?? 'sim.customer@okaxis',
            outcome: 'success',
          }),
        });
        await r.body?.cancel();
        if (r.ok) paid++;
      } catch (e) {
        p.failed++;
        const code =
          e instanceof TerminalRequestError
            ? e.code
            : (e as Error).name === 'TerminalTimeoutError'
              ? 'timeout'
              : 'error';
        errors[code] = (errors[code] ?? 0) + 1;
      }
    };
    const start = performance.now();
    const end = start + o.durationSeconds * 1000;
    let issued = 0;
    let rr = 0;
    // Open loop: requests go out on schedule whether or not earlier ones have answered, so a
    // slow gateway shows up as latency rather than as a lower request rate.
    await new Promise<void>((resolve) => {
      const tick = setInterval(() => {
        const now = performance.now();
        p.elapsedSeconds = (now - start) / 1000;
        const due = Math.floor(((Math.min(now, end) - start) / 1000) * o.rate);
        while (issued < due) {
          issued++;
          const t = clients[rr++ % clients.length];
          const w = one(t).finally(() => inFlight.delete(w));
          inFlight.add(w);
        }
        if (now >= end) {
          clearInterval(tick);
          resolve();
        }
      }, 5);
    });
    p.phase = 'draining';
    await Promise.allSettled([...inFlight]);
    // Give the last "payment received" events a moment to arrive.
    const drainUntil = Date.now() + 5000;
    while (paidEvents.size < paid && Date.now() < drainUntil) await new Promise((r) => setTimeout(r, 50));
    const duration = (performance.now() - start) / 1000;
    rtts.sort((a, b) => a - b);
    return {
      terminals: o.count,
      connected: p.connected,
      connect_failed: connectFailed,
      sent: p.sent,
      ok: p.ok,
      failed: p.failed,
      errors,
      round_trip_ms: {
        p50: percentile(rtts, 50),
        p95: percentile(rtts, 95),
        p99: percentile(rtts, 99),
        max: percentile(rtts, 100),
      },
      events_received: p.events,
      paid,
      paid_event_received: paidEvents.size,
      duration_s: Math.round(duration * 10) / 10,
      achieved_rate: Math.round((p.sent / Math.max(duration, 0.001)) * 10) / 10,
    };
  } finally {
    clearInterval(ticker);
    report();
    await Promise.allSettled(clients.map((c) => c.close()));
  }
}

/** One line of progress: a bar while running, counters always. */
export function progressLine(p: SimulationProgress, width = 30): string {
  const frac = p.phase === 'running' || p.phase === 'draining' ? Math.min(1, p.elapsedSeconds / p.durationSeconds) : 0;
  const filled = Math.round(frac * width);
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
  const head =
    p.phase === 'provisioning'
      ? `provisioning ${p.provisioned}`
      : p.phase === 'connecting'
        ? `connecting ${p.connected}`
        : `${bar} ${Math.round(frac * 100)}% ${p.elapsedSeconds.toFixed(1)}s`;
  return `${head}  connected ${p.connected}  sent ${p.sent}  ok ${p.ok}  failed ${p.failed}  events ${p.events}`;
}

export function formatSummary(s: SimulationSummary): string {
  const ms = (v: number | null) => (v === null ? '-' : `${v} ms`);
  const lines = [
    `terminals        ${s.terminals} (connected ${s.connected}, failed to connect ${s.connect_failed})`,
    `payments sent    ${s.sent} in ${s.duration_s} s (${s.achieved_rate}/s)`,
    `ok / failed      ${s.ok} / ${s.failed}${
      Object.keys(s.errors).length
        ? `  (${Object.entries(s.errors)
            .map(([k, v]) => `${k}: ${v}`)
            .join(', ')})`
        : ''
    }`,
    `round trip       p50 ${ms(s.round_trip_ms.p50)}  p95 ${ms(s.round_trip_ms.p95)}  p99 ${ms(s.round_trip_ms.p99)}  max ${ms(s.round_trip_ms.max)}`,
    `events received  ${s.events_received} (paid ${s.paid}, "payment received" seen for ${s.paid_event_received})`,
  ];
  return lines.join('\n');
}
