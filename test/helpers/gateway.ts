import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestApp, withFreePorts, type TestApp } from './harness.ts';
import {
  GATEWAY_DEFAULTS,
  locatePrerequisites,
  startGateway,
  type GatewaySettings,
  type RunningGateway,
} from '../../src/http/edge/index.ts';

// A real Tillpoint API behind a real WAF gateway (nginx + ModSecurity v3 + OWASP CRS), both on
// loopback ports, wired as deploy/gateway/README.md says: the bank's callbacks come in through
// the gateway (PUBLIC_URL is the gateway), our calls to the embedded bank simulator go to the
// API's own listener (the config's default, whatever PUBLIC_URL is), and the API trusts the
// gateway's X-Forwarded-For.

/** Why the gateway tests cannot run here, or undefined when they can. */
export function gatewayUnavailable(): string | undefined {
  try {
    locatePrerequisites();
    return undefined;
  } catch (e) {
    return (e as Error).message.replace(/\n/g, ' ');
  }
}

/**
 * The `skip` option for gateway suites: a reason to skip on a machine without nginx, never in
 * CI: .ci/run sets CI_REQUIRE_GATEWAY=1, and then a missing nginx fails the suite instead.
 */
export function gatewaySkip(): string | false {
  const missing = gatewayUnavailable();
  if (!missing || process.env.CI_REQUIRE_GATEWAY === '1') return false;
  return `needs nginx with ModSecurity and the OWASP CRS (${missing}); CI installs them and sets CI_REQUIRE_GATEWAY=1`;
}

export interface GatewayedApp {
  t: TestApp;
  gw: RunningGateway;
  /** The gateway's URL: what clients use. */
  url: string;
  close(): Promise<void>;
}

export async function startAppBehindGateway(
  opts: { env?: Record<string, string>; gateway?: Partial<GatewaySettings>; logLines?: string[] } = {},
): Promise<GatewayedApp> {
  const missing = gatewayUnavailable();
  if (missing) throw new Error(`The WAF gateway cannot start here: ${missing}`);
  // Both ports again, fresh, when either was taken before the API or nginx bound it.
  const { t, gw } = await withFreePorts(2, async ([appPort, gwPort]) => {
    // World-searchable, so nginx (started as root in CI) can drop its workers to www-data.
    const dir = mkdtempSync(join(tmpdir(), 'tillpoint-gw-'));
    chmodSync(dir, 0o755);
    const gwDir = join(dir, 'gateway');
    const t = await startTestApp({
      logLines: opts.logLines,
      env: {
        PORT: String(appPort),
        PUBLIC_URL: `http://127.0.0.1:${gwPort}`,
        HTTP_TRUST_PROXY: '127.0.0.1',
        SECURITY_EVENTS_FILE: join(gwDir, 'security-events.jsonl'),
        ...opts.env,
      },
    });
    try {
      const gw = await startGateway({
        ...GATEWAY_DEFAULTS,
        dir: gwDir,
        listen: { host: '127.0.0.1', port: gwPort },
        upstreams: [{ host: '127.0.0.1', port: appPort }],
        bodyLimitBytes: t.config.http.bodyLimitBytes,
        headerBufferBytes: t.config.http.maxHeaderBytes,
        jsonMaxDepth: t.config.http.jsonMaxDepth,
        workerProcesses: 1,
        log: () => {},
        ...opts.gateway,
      });
      return { t, gw };
    } catch (e) {
      await t.close();
      throw e;
    }
  });
  return {
    t,
    gw,
    url: gw.url,
    async close() {
      await gw.stop();
      await t.close();
    },
  };
}

/** Sums a Prometheus counter's samples whose labels include all of `labels`. */
export function counterSum(metricsText: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (Object.entries(labels).some(([k, v]) => !line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
