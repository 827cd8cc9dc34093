import { parseArgs } from 'node:util';
import { ConfigError } from '../../platform/config.ts';
import { onShutdown, type Command } from '../command.ts';
import { startHealthServer } from '../health.ts';
import { readFileSync } from 'node:fs';
import { startTracing, tracingSettings } from '../../platform/tracing.ts';

export const serve: Command = {
  name: 'serve',
  usage: 'serve [--role api|worker|terminal-gateway|all]',
  summary:
    'Run the platform (default role: all). In development the demo data is loaded and its credentials written to <data dir>/demo.json.',
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { role: { type: 'string', default: 'all' } } });
    const role = values.role as string;
    if (!['api', 'worker', 'terminal-gateway', 'all'].includes(role))
      throw new ConfigError('--role', 'must be api, worker, terminal-gateway or all');
    // Tracing starts before the app so every span of its start-up and requests has a provider.
    const traceSettings = tracingSettings(process.env, `tillpoint-${role}`);
    const tracing = traceSettings ? await startTracing(traceSettings, packageVersion()) : undefined;
    const { createApp } = await import('../../app.ts');
    const app = await createApp({ role: role as 'api' | 'worker' | 'terminal-gateway' | 'all' });
    const url = await app.start();
    const c = app.config;
    const lines = [
      `Tillpoint is running (role: ${role}, mode: ${c.mode}, database: ${app.db.driver === 'pglite' ? `PGlite in ${c.dataDir}` : 'PostgreSQL'})`,
    ];
    const mqttUrls = app.gateway?.urls() ?? [];
    for (const u of mqttUrls)
      lines.push(
        `  MQTT:     ${u}${u.startsWith('mqtts:') ? ' (mutual TLS: `tillpoint terminals enroll <id>`)' : u.startsWith('mqtt:') ? ' (development only: terminal id + MQTT secret)' : ' (external broker)'}`,
      );
    if (url) {
      lines.push(
        `  Console:  ${c.publicUrl}/console/`,
        `  API:      ${c.publicUrl}/v1`,
        `  Docs:     ${c.publicUrl}/docs`,
        `  OpenAPI:  ${c.publicUrl}/openapi.json`,
        `  Metrics:  ${c.publicUrl}/metrics`,
      );
      if (traceSettings)
        lines.push(`  Traces:   OTLP to ${traceSettings.endpoint} (sampling ${traceSettings.sampleRatio})`);
      if (c.embeddedBankSim) lines.push(`  Bank sim: ${c.publicUrl}/sim (development only)`);
      if (c.mode !== 'production') {
        const { loadDemo } = await import('../../roles/demo.ts');
        const demo = await loadDemo(app.db, {
          dataDir: c.dataDir,
          apiUrl: c.publicUrl,
          mqttUrl: mqttUrls.find((u) => u.startsWith('mqtt:')) ?? c.mqtt.url ?? null,
          operator: c.mode === 'development' ? app.services.identity : undefined,
        });
        lines.push(
          `  Demo:     ${demo.file} (${demo.created ? 'created' : 'reused'}; merchant ${demo.info.merchant_id})`,
        );
      }
    }
    const health =
      c.healthPort === undefined
        ? undefined
        : await startHealthServer({
            host: c.host,
            port: c.healthPort,
            registry: app.metrics.registry,
            // Draining, the database and (for a gateway) the broker: src/platform/readiness.ts.
            ready: () => app.readiness.status(),
          });
    if (health) lines.push(`  Health:   ${health.url}/healthz, /readyz, /metrics`);
    process.stdout.write(lines.join('\n') + '\n');
    onShutdown(
      async () => {
        app.logger.info({ timeout_seconds: c.lifecycle.shutdownTimeoutSeconds }, 'stopping');
        health?.drain();
        await app.stop();
        await health?.close();
        await tracing?.shutdown();
        app.logger.info('stopped');
      },
      {
        timeoutMs: c.lifecycle.shutdownTimeoutSeconds * 1000,
        onTimeout: () =>
          app.logger.error(
            { timeout_seconds: c.lifecycle.shutdownTimeoutSeconds },
            'stop did not finish in time; exiting anyway',
          ),
      },
    );
    return undefined;
  },
};

function packageVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string })
    .version;
}
