import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../../platform/config.ts';
import type { Metrics } from '../../platform/metrics.ts';
import type { AppError } from '../../platform/errors.ts';
import { createEdgeMetrics } from './metrics.ts';
import { createMemoryBucketStore, type BucketStore } from './tokenBucket.ts';
import { createRedisBucketStore } from './redisBucketStore.ts';
import { createRateLimiter, registerRateLimits } from './rateLimit.ts';
import { registerContentTypePolicy, registerSecurityHeaders } from './securityHeaders.ts';
import { applyConnectionCap, httpServerOptions } from './httpServer.ts';
import { assertJsonWithinLimits } from './jsonLimits.ts';
import { followLines, type SecurityEvent } from './securityEvents.ts';

// Edge protection inside the API, also when no gateway stands in front of it: server options
// (timeouts, header size, trusted proxies), connection cap, security headers, CORS, strict
// content types, JSON shape limits, rate limits, and the count of the gateway's security events.
// src/http/server.ts creates it before Fastify (for the server options) and registers it
// before the authentication hook (so limits run first).

export interface EdgeDeps {
  config: Config;
  logger: Logger;
  metrics: Metrics;
}

export function createEdgeProtection({ config, logger, metrics }: EdgeDeps) {
  const edgeMetrics = createEdgeMetrics(metrics.registry);
  const { http } = config;
  const jsonLimits = { maxDepth: http.jsonMaxDepth, maxArrayLength: http.jsonMaxArrayLength };

  return {
    metrics: edgeMetrics,
    /** Spread into Fastify's options. */
    serverOptions: httpServerOptions(http, edgeMetrics),

    /** For the JSON body parser: the error to answer with when a body is too deep or too long, else undefined. */
    jsonProblem(text: string): AppError | undefined {
      try {
        assertJsonWithinLimits(text, jsonLimits);
        return undefined;
      } catch (e) {
        edgeMetrics.requestsRefused.inc({ reason: 'json_too_complex' });
        return e as AppError;
      }
    },

    async register(app: FastifyInstance) {
      applyConnectionCap(app.server, http.maxConnections, edgeMetrics);
      registerSecurityHeaders(app, {
        hstsMaxAgeSeconds: http.hstsMaxAgeSeconds,
        corsAllowedOrigins: http.corsAllowedOrigins,
      });
      registerContentTypePolicy(app, edgeMetrics);

      const memory = createMemoryBucketStore();
      const store: BucketStore = config.redisUrl
        ? await createRedisBucketStore({
            url: config.redisUrl,
            fallback: memory,
            logger,
            onError: () => edgeMetrics.rateLimitStoreErrors.inc(),
            caFile: config.tls.redisCaFile,
          })
        : memory;
      registerRateLimits(
        app,
        config.rateLimits,
        createRateLimiter({ config: config.rateLimits, store, metrics: edgeMetrics }),
      );

      // Counts what the gateway records from now on (a counter starts at zero with the process).
      const follower = config.securityEventsFile
        ? followLines(
            config.securityEventsFile,
            (line) => {
              const e = JSON.parse(line) as SecurityEvent;
              edgeMetrics.wafEvents.inc({ action: e.action, category: e.category });
            },
            { startAt: 'end', intervalMs: 500 },
          )
        : undefined;

      app.addHook('onClose', async () => {
        follower?.stop();
        await store.close();
      });
    },
  };
}

export type EdgeProtection = ReturnType<typeof createEdgeProtection>;
