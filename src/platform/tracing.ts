// Distributed tracing with OpenTelemetry: off by default, on when an OTLP endpoint is configured.
//
// The code calls the OpenTelemetry API only (`@opentelemetry/api`): with no SDK registered every
// call is a no-op that allocates nothing, so the payment path pays nothing while tracing is off.
// `startTracing` loads the SDK (lazily, so processes without tracing never load it) and registers
// a tracer provider, the AsyncLocalStorage context manager and the W3C trace-context propagator.
//
// What a trace follows (docs/observability.md): the HTTP request (W3C `traceparent` in, via
// @fastify/otel) or the terminal's MQTT request (its request id as an attribute, and a
// `traceparent` MQTT 5 user property when the terminal sends one), the bank call (the
// `traceparent` header goes out with it), the bank's callback (the simulator sends it back; a
// real bank does not, so the callback's span carries the payment id and txn ref to join on), and
// the push of `payment.updated` to the terminal (the trace context rides in the outbox row).
//
// Settings are OpenTelemetry's own environment variables, read here and by the SDK:
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT (tracing is on when either is
// set), OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER_ARG (the share of new traces kept, default 1),
// OTEL_SDK_DISABLED=true (off whatever else is set).
import {
  context,
  propagation,
  trace,
  SpanKind,
  SpanStatusCode,
  INVALID_SPAN_CONTEXT,
  type Attributes,
  type Context,
  type Span,
} from '@opentelemetry/api';

import { Type } from '@sinclair/typebox';
import { ConfigError, defineSettings, type Env } from './settings.ts';

export { SpanKind, type Span };

const TRACER = 'tillpoint';

export interface TracingSettings {
  /** Where spans go (OTLP over HTTP, `…/v1/traces`); tracing is off without it. */
  endpoint?: string;
  serviceName: string;
  /** Share of new traces recorded, 0 to 1; a caller's sampling decision is always followed. */
  sampleRatio: number;
}

interface TracingConfig {
  /** Null when tracing is off (no OTLP endpoint). */
  tracing: TracingSettings | null;
}
declare module './config.ts' {
  interface Config extends TracingConfig {}
}

/** OpenTelemetry's own variables (the SDK reads the same names). */
export const tracingSettingsSection = defineSettings({
  title: 'Tracing (OpenTelemetry)',
  source: 'src/platform/tracing.ts',
  schema: Type.Object({
    OTEL_EXPORTER_OTLP_ENDPOINT: Type.String({
      defaultText: 'unset: tracing off',
      description:
        'OTLP/HTTP collector base URL; spans go to `<url>/v1/traces`. Tracing is on when this or the next is set.',
    }),
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: Type.String({
      description: 'Full OTLP/HTTP traces URL (overrides `OTEL_EXPORTER_OTLP_ENDPOINT`).',
    }),
    OTEL_SERVICE_NAME: Type.String({
      defaultText: '`tillpoint-<role>`',
      description: 'The service name on every span.',
    }),
    OTEL_TRACES_SAMPLER_ARG: Type.Number({
      default: 1,
      minimum: 0,
      maximum: 1,
      description: "Share of new traces recorded (a caller's sampling decision is always followed).",
    }),
    OTEL_SDK_DISABLED: Type.Boolean({ default: false, description: '`true` turns tracing off whatever else is set.' }),
  }),
  load: (env: Env): TracingConfig => ({ tracing: tracingSettings(env, 'tillpoint') ?? null }),
});

/** Reads the standard OTEL_* variables. Returns undefined when tracing is off. */
export function tracingSettings(env: Env, defaultServiceName: string): TracingSettings | undefined {
  // Every value is checked whether or not tracing is on, so a bad one is found at the first start.
  const disabled = env.OTEL_SDK_DISABLED;
  if (disabled !== undefined && disabled !== 'true' && disabled !== 'false')
    throw new ConfigError('OTEL_SDK_DISABLED', 'must be true or false');
  const ratio = env.OTEL_TRACES_SAMPLER_ARG === undefined ? 1 : Number(env.OTEL_TRACES_SAMPLER_ARG);
  if (env.OTEL_TRACES_SAMPLER_ARG?.trim() === '' || !Number.isFinite(ratio) || ratio < 0 || ratio > 1)
    throw new ConfigError(
      'OTEL_TRACES_SAMPLER_ARG',
      `must be a number from 0 to 1, got ${env.OTEL_TRACES_SAMPLER_ARG}`,
    );
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  const endpoint =
    env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || (base ? `${base.replace(/\/+$/, '')}/v1/traces` : undefined);
  if (endpoint && !/^https?:\/\/[^/]/.test(endpoint))
    throw new ConfigError(
      env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT',
      `must be an http(s) URL, got ${JSON.stringify(endpoint)}`,
    );
  if (!endpoint || disabled === 'true') return undefined;
  return { endpoint, serviceName: env.OTEL_SERVICE_NAME?.trim() || defaultServiceName, sampleRatio: ratio };
}

export interface Tracing {
  /** Flushes the spans still buffered and stops exporting (call at shutdown). */
  shutdown(): Promise<void>;
}

let active = false;

/** True once `startTracing` registered the SDK in this process. */
export function tracingEnabled(): boolean {
  return active;
}

/**
 * Registers the SDK for this process: spans are batched and sent over OTLP/HTTP (JSON), new traces
 * sampled at `sampleRatio`, a caller's sampling decision followed.
 */
export async function startTracing(settings: TracingSettings, version: string): Promise<Tracing> {
  const [{ NodeTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler }, otlp, resources] =
    await Promise.all([
      import('@opentelemetry/sdk-trace-node'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/resources'),
    ]);
  const provider = new NodeTracerProvider({
    resource: resources.resourceFromAttributes({ 'service.name': settings.serviceName, 'service.version': version }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.sampleRatio) }),
    spanProcessors: [new BatchSpanProcessor(new otlp.OTLPTraceExporter({ url: settings.endpoint }))],
  });
  provider.register();
  active = true;
  return {
    async shutdown() {
      active = false;
      await provider.shutdown();
    },
  };
}

/**
 * Runs `fn` inside a new span (a child of the active one, or of `parent`), ends it when `fn`
 * settles, and marks it failed when `fn` throws. Costs nothing while tracing is off.
 */
export function withSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
  options: { kind?: SpanKind; parent?: Context } = {},
): Promise<T> {
  if (!active) return fn(trace.wrapSpanContext(INVALID_SPAN_CONTEXT));
  return trace
    .getTracer(TRACER)
    .startActiveSpan(
      name,
      { kind: options.kind ?? SpanKind.INTERNAL, attributes },
      options.parent ?? context.active(),
      async (span) => {
        try {
          return await fn(span);
        } catch (err) {
          span.recordException(err as Error);
          span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error)?.message });
          throw err;
        } finally {
          span.end();
        }
      },
    );
}

/** Adds the active trace context (`traceparent`, `tracestate`) to outgoing headers. */
export function injectTraceHeaders<H extends Record<string, string | string[] | number | undefined>>(headers: H): H {
  if (active) propagation.inject(context.active(), headers);
  return headers;
}

/** The trace context a peer sent (HTTP headers, MQTT 5 user properties), as a parent for a span. */
export function extractTraceContext(carrier: Record<string, unknown> | undefined): Context | undefined {
  if (!active || !carrier) return undefined;
  return propagation.extract(context.active(), carrier);
}

/** The active span's W3C `traceparent`, to store beside work that continues later (the outbox). */
export function currentTraceparent(): string | null {
  if (!active) return null;
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent ?? null;
}

/** Adds attributes to the active span (a callback's span: which payment it was about). */
export function annotateSpan(attributes: Attributes): void {
  if (active) trace.getActiveSpan()?.setAttributes(attributes);
}

/** The active trace and span ids, for log lines; empty when no span is recording. */
export function traceFields(): { trace_id?: string; span_id?: string } {
  if (!active) return {};
  const span = trace.getActiveSpan();
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}
