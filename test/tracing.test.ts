// Tracing: a payment's trace from the HTTP call through the bank call and the bank's callback,
// exported over OTLP/HTTP. No OpenTelemetry Collector is packaged for this machine, so the
// receiver here is a plain HTTP server that decodes the OTLP/HTTP JSON body as the
// specification defines it (opentelemetry-proto's ExportTraceServiceRequest, ids in hex).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { startTracing, tracingSettings, withSpan, currentTraceparent, type Tracing } from '../src/platform/tracing.ts';
import { startTestApp, type TestApp } from './helpers/harness.ts';
import { startAppGateway, type TestGateway } from './helpers/terminals.ts';
import { issueMqttSecret } from '../src/modules/terminals/index.ts';
import { connectTerminal, type TerminalClient } from '../src/tools/terminal-sdk/index.ts';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: { key: string; value: Record<string, unknown> }[];
}

function attr(span: OtlpSpan, key: string): unknown {
  const v = span.attributes?.find((a) => a.key === key)?.value;
  return v ? Object.values(v)[0] : undefined;
}

describe('tracing off (the default)', () => {
  test('no endpoint, no tracing; a bad endpoint or ratio is refused at start', () => {
    assert.equal(tracingSettings({}, 'tillpoint'), undefined);
    assert.equal(
      tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }, 'x'),
      undefined,
    );
    assert.deepEqual(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' }, 'tillpoint-api'), {
      endpoint: 'http://collector:4318/v1/traces',
      serviceName: 'tillpoint-api',
      sampleRatio: 1,
    });
    assert.throws(
      () => tracingSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'collector:4318' }, 'x'),
      /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: must be an http\(s\) URL/,
    );
    assert.throws(
      () => tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_SAMPLER_ARG: '2' }, 'x'),
      /OTEL_TRACES_SAMPLER_ARG: must be a number from 0 to 1/,
    );
  });

  test('spans are no-ops and nothing is propagated', async () => {
    const r = await withSpan('noop', {}, async (span) => {
      assert.equal(span.isRecording(), false);
      return currentTraceparent();
    });
    assert.equal(r, null);
  });
});

describe('tracing on, exported over OTLP/HTTP', () => {
  let receiver: Server;
  let tracing: Tracing;
  let t: TestApp;
  let gw: TestGateway;
  const spans: OtlpSpan[] = [];
  const bodies: string[] = [];
  const logLines: string[] = [];

  before(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        bodies.push(`${req.method} ${req.url} ${req.headers['content-type']}`);
        const body = JSON.parse(text) as {
          resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[];
        };
        for (const rs of body.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    // Port 0: the receiver listens at once, on a port the kernel picks (nothing to race for).
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const port = (receiver.address() as { port: number }).port;
    const settings = tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}` }, 'tillpoint-test');
    tracing = await startTracing(settings!, '0.0.0-test');
    t = await startTestApp({ logLines });
    gw = await startAppGateway(t);
  });

  after(async () => {
    await gw?.stop();
    await t?.close();
    await tracing?.shutdown();
    receiver?.close();
  });

  test("a payment's trace: HTTP or MQTT request, bank call, the bank's callback, the push to the terminal; log lines carry the trace id", async () => {
    const { terminal } = await t.seedMerchant();
    const traceId = randomBytes(16).toString('hex');
    const parentSpanId = randomBytes(8).toString('hex');
    const p = await t.request(
      'POST',
      '/v1/payments',
      { terminal_id: terminal.id, amount: 4200, currency: 'INR', method: 'upi_collect', payer_vpa: 'meera.s@okicici' },
      { traceparent: `00-${traceId}-${parentSpanId}-01` },
    );
    assert.equal(p.status, 201);
    await t.eventually(async () => (await t.request('GET', `/v1/payments/${p.body.id}`)).body.status === 'succeeded');

    // The same payment from a terminal over MQTT: its request, the bank call it makes, the bank's
    // callback and the push of payment.updated back to the terminal are one trace.
    const { terminal: till } = await t.seedMerchant('Traced Till');
    const { password } = await issueMqttSecret(t.db, till.id, 'test');
    const term: TerminalClient = await connectTerminal({
      url: gw.plainUrl!,
      terminalId: till.id,
      password,
      requestTimeoutMs: 10_000,
    });
    const updated = new Promise<void>((resolve) =>
      term.on('payment.updated', (e) => {
        if (e.body.status === 'succeeded') resolve();
      }),
    );
    const viaMqtt = await term.request('payment.create', {
      amount: 2500,
      currency: 'INR',
      method: 'upi_collect',
      payer_vpa: 'meera.s@okicici',
    });
    await updated;
    await term.close();

    await tracing.shutdown(); // flushes every buffered span to the receiver
    assert.ok(
      bodies.every((b) => b.startsWith('POST /v1/traces application/json')),
      bodies.join('\n'),
    );
    const ours = spans.filter((s) => s.traceId === traceId);
    const server = ours.find((s) => s.parentSpanId === parentSpanId);
    assert.ok(server, `a server span whose parent is the caller's span: ${JSON.stringify(ours.map((s) => s.name))}`);
    assert.equal(server.name, 'POST /v1/payments');
    assert.equal(server.kind, 2, 'SPAN_KIND_SERVER');
    assert.match(String(attr(server, 'tillpoint.request_id')), /^req_/);

    const bankCall = ours.find((s) => s.name.startsWith('bank ') && s.kind === 3);
    assert.ok(bankCall, `a client span for the bank call: ${JSON.stringify(ours.map((s) => s.name))}`);
    assert.equal(attr(bankCall, 'tillpoint.outcome'), 'ok');
    const callback = ours.find((s) => s.name.startsWith('POST /v1/banks/') && s.kind === 2);
    assert.ok(
      callback,
      `the bank's callback continues the trace (the simulator sends it back): ${ours.map((s) => s.name)}`,
    );
    assert.equal(attr(callback, 'tillpoint.callback_kind'), 'payment');

    const request = spans.find((s) => s.name === 'terminal payment.create');
    assert.ok(request, 'the terminal request has a server span');
    assert.match(String(attr(request, 'tillpoint.request_id')), /.+/);
    const mqttTrace = spans.filter((s) => s.traceId === request.traceId).map((s) => s.name);
    assert.ok(
      mqttTrace.some((n) => n.startsWith('bank ')),
      `bank call in the terminal's trace: ${mqttTrace}`,
    );
    assert.ok(
      mqttTrace.includes('terminal push payment.updated'),
      `the push to the terminal in the same trace: ${mqttTrace} (${(viaMqtt as { id: string }).id})`,
    );

    const lines = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.trace_id === traceId);
    assert.ok(lines.length >= 1, 'the request log line carries the trace id');
    assert.ok(lines.every((l) => typeof l.span_id === 'string' && /^[0-9a-f]{16}$/.test(l.span_id as string)));
  });
});
