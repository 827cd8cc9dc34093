import type { FastifyInstance } from 'fastify';
import { tracingEnabled } from '../platform/tracing.ts';

// Server spans for HTTP requests, by @fastify/otel (Fastify's own OpenTelemetry plugin): it
// continues the caller's W3C trace context and names each span after the route, not the URL, so
// ids in paths never become span names. Registered only while tracing is on (src/platform/tracing.ts):
// with tracing off, requests carry no hooks of its own, and the plugin (with the OpenTelemetry
// instrumentation, core and semantic-conventions packages it brings) is not even loaded: ~0.1 s of
// CPU at every start, in every process and test that never traces.
const UNTRACED = new Set(['/metrics', '/healthz', '/readyz', '/livez']);

export async function registerTracing(app: FastifyInstance): Promise<void> {
  if (!tracingEnabled()) return;
  const { FastifyOtelInstrumentation } = await import('@fastify/otel');
  const instrumentation = new FastifyOtelInstrumentation({
    // One span per request; spans per hook or for the handler would cost more than they tell
    // (the work inside has its own spans: the bank call, the terminal push).
    instrumentHooks: false,
    instrumentHandler: false,
    ignorePaths: (route) => UNTRACED.has(route.url) || route.url.startsWith('/console'),
    requestHook: (span, request) => {
      // The semantic conventions' name for a server span: method and route template.
      span.updateName(`${request.method} ${request.routeOptions.url ?? ''}`);
      span.setAttribute('tillpoint.request_id', String(request.id));
    },
  });
  await app.register(instrumentation.plugin());
}
