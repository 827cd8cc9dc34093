import { parseArgs } from 'node:util';
import { join, resolve } from 'node:path';
import { ConfigError, parseHttp } from '../../platform/config.ts';
import { onShutdown, type Command, UsageError } from '../command.ts';

// `tillpoint gateway`: the WAF gateway in front of the API (deploy/gateway/README.md).

const USAGE = [
  'gateway start [--listen HOST:PORT] [--upstream URL]... [--tls-cert FILE --tls-key FILE] [--paranoia 1-4]',
  '              [--anomaly-threshold N] [--detection-only] [--rate-per-ip N] [--burst-per-ip N] [--connections-per-ip N]',
  '              [--workers N|auto] [--user NAME] [--no-access-log] [--nginx PATH] [--modsecurity-module PATH] [--crs-dir PATH]',
  '  gateway check',
  '  gateway events [--limit N]',
].join('\n');

function hostPort(flag: string, v: string): { host: string; port: number } {
  let u: URL;
  try {
    u = new URL(`http://${v}`);
  } catch {
    throw new ConfigError(flag, `expected HOST:PORT, got "${v}"`);
  }
  const port = Number(u.port);
  if (!u.port || !Number.isInteger(port) || port < 1 || port > 65535 || u.pathname !== '/' || u.username) {
    throw new ConfigError(flag, `expected HOST:PORT, got "${v}"`);
  }
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port };
}

function upstream(v: string): { host: string; port: number } {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ConfigError('--upstream', `expected http://HOST:PORT, got "${v}"`);
  }
  if (u.protocol !== 'http:' || (u.pathname !== '/' && u.pathname !== '') || u.search || u.username) {
    throw new ConfigError('--upstream', `expected http://HOST:PORT (the API's own listener), got "${v}"`);
  }
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 80) };
}

function intFlag(flag: string, v: string | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max)
    throw new ConfigError(flag, `must be an integer from ${min} to ${max}, got "${v}"`);
  return Number(v);
}

/** The data directory, with the same default as the API's config (TILLPOINT_DATA_DIR). */
const dataDir = () => resolve(process.env.TILLPOINT_DATA_DIR || './data');

export const gateway: Command = {
  name: 'gateway',
  usage: USAGE,
  summary:
    'Run the WAF gateway (nginx + ModSecurity v3 + OWASP CRS) in front of the API: writes its configuration into <data dir>/gateway, ' +
    'starts nginx, prints when ready. `check` reports what is installed; `events` prints the latest security events.',
  async run(argv) {
    const [sub, ...rest] = argv;
    const edge = await import('../../http/edge/index.ts');

    if (sub === 'check') {
      try {
        const p = edge.locatePrerequisites();
        process.stdout.write(
          `nginx: ${p.nginxBin}\nModSecurity module: ${p.modsecurityModule}\nOWASP CRS ${p.crsVersion}: ${p.crsRulesDir}\nunicode mapping: ${p.unicodeMapping}\n`,
        );
        return 0;
      } catch (e) {
        process.stderr.write(`${(e as Error).message}\n`);
        return 1;
      }
    }

    if (sub === 'events') {
      const { values } = parseArgs({ args: rest, options: { limit: { type: 'string' } } });
      const file = join(dataDir(), 'gateway', edge.GATEWAY_FILES.events);
      for (const e of edge.readSecurityEvents(file, { limit: intFlag('--limit', values.limit, 50, 1, 1_000_000) })) {
        process.stdout.write(JSON.stringify(e) + '\n');
      }
      return 0;
    }

    if (sub !== 'start') throw new UsageError(`usage: tillpoint ${USAGE}`);
    const { values } = parseArgs({
      args: rest,
      options: {
        listen: { type: 'string', default: '127.0.0.1:8081' },
        upstream: { type: 'string', multiple: true },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        paranoia: { type: 'string' },
        'anomaly-threshold': { type: 'string' },
        'detection-only': { type: 'boolean', default: false },
        'rate-per-ip': { type: 'string' },
        'burst-per-ip': { type: 'string' },
        'connections-per-ip': { type: 'string' },
        workers: { type: 'string' },
        user: { type: 'string' },
        'no-access-log': { type: 'boolean', default: false },
        nginx: { type: 'string' },
        'modsecurity-module': { type: 'string' },
        'crs-dir': { type: 'string' },
      },
    });
    if (Boolean(values['tls-cert']) !== Boolean(values['tls-key']))
      throw new ConfigError('--tls-cert', 'give both --tls-cert and --tls-key, or neither');
    const http = parseHttp(process.env);
    const d = edge.GATEWAY_DEFAULTS;
    const workers =
      values.workers === undefined || values.workers === 'auto'
        ? 'auto'
        : intFlag('--workers', values.workers, 1, 1, 256);

    let gw;
    try {
      gw = await edge.startGateway({
        dir: join(dataDir(), 'gateway'),
        listen: hostPort('--listen', values.listen!),
        upstreams: (values.upstream?.length ? values.upstream : ['http://127.0.0.1:8080']).map(upstream),
        tls: values['tls-cert']
          ? { certFile: resolve(values['tls-cert']), keyFile: resolve(values['tls-key']!) }
          : undefined,
        paranoia: intFlag('--paranoia', values.paranoia, d.paranoia, 1, 4) as 1 | 2 | 3 | 4,
        anomalyThreshold: intFlag('--anomaly-threshold', values['anomaly-threshold'], d.anomalyThreshold, 1, 1000),
        detectionOnly: values['detection-only']!,
        bodyLimitBytes: http.bodyLimitBytes,
        headerBufferBytes: http.maxHeaderBytes,
        jsonMaxDepth: http.jsonMaxDepth,
        clientTimeoutSeconds: Math.max(1, Math.ceil(http.headersTimeoutMs / 1000)),
        upstreamTimeoutSeconds: Math.max(d.upstreamTimeoutSeconds, Math.ceil(http.requestTimeoutMs / 1000) + 5),
        ratePerIp: intFlag('--rate-per-ip', values['rate-per-ip'], d.ratePerIp, 1, 10_000_000),
        burstPerIp: intFlag('--burst-per-ip', values['burst-per-ip'], d.burstPerIp, 0, 10_000_000),
        connectionsPerIp: intFlag(
          '--connections-per-ip',
          values['connections-per-ip'],
          d.connectionsPerIp,
          1,
          10_000_000,
        ),
        workerProcesses: workers,
        workerConnections: d.workerConnections,
        workerUser: values.user,
        accessLog: !values['no-access-log'],
        hstsMaxAgeSeconds: http.hstsMaxAgeSeconds,
        prerequisites: {
          nginxBin: values.nginx,
          modsecurityModule: values['modsecurity-module'],
          crsRulesDir: values['crs-dir'],
        },
      });
    } catch (e) {
      if (e instanceof edge.GatewayPrerequisiteError) {
        process.stderr.write(`tillpoint gateway: ${e.message}\n`);
        return 1;
      }
      throw e;
    }

    const p = gw.prerequisites;
    process.stdout.write(
      [
        `Tillpoint gateway is ready: ${gw.url} -> ${(values.upstream?.length ? values.upstream : ['http://127.0.0.1:8080']).join(', ')}`,
        `  WAF:        ModSecurity v3 + OWASP CRS ${p.crsVersion}, paranoia level ${values.paranoia ?? d.paranoia}, ` +
          `${values['detection-only'] ? 'detection only (not blocking)' : 'blocking'}`,
        `  Config:     ${join(gw.dir, edge.GATEWAY_FILES.nginxConf)}`,
        `  Audit log:  ${gw.auditLog}`,
        `  Events:     ${gw.eventsFile}`,
        `  nginx:      pid ${gw.pid}${gw.workerUser ? `, workers as ${gw.workerUser.split(' ')[0]}` : ''}`,
        "  The API should set HTTP_TRUST_PROXY to this gateway's address (e.g. 127.0.0.1) so its per-IP limits see the client.",
      ].join('\n') + '\n',
    );

    let stopping = false;
    onShutdown(async () => {
      stopping = true;
      await gw.stop();
    });
    void gw.exited.then((code) => {
      if (stopping) return;
      process.stderr.write(
        `tillpoint gateway: nginx exited (code ${code}); see ${join(gw.dir, edge.GATEWAY_FILES.errorLog)}\n`,
      );
      process.exit(1);
    });
    return undefined;
  },
};
