import { chmodSync, chownSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crsRuleFiles, type GatewayPrerequisites } from './prerequisites.ts';

// Renders deploy/gateway/* into a gateway directory (<data dir>/gateway): nginx.conf, the
// ModSecurity engine and CRS setup, and Tillpoint's rule files. Templates use {{NAME}}
// placeholders; every placeholder must be filled and every value is checked, so a path or an
// address can never inject configuration.

export const TEMPLATE_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../../../deploy/gateway');

export interface GatewaySettings {
  /** Where the rendered files, logs, pid and socket live. */
  dir: string;
  listen: { host: string; port: number };
  /** API replicas as host:port; requests are balanced across them. */
  upstreams: { host: string; port: number }[];
  tls?: { certFile: string; keyFile: string };
  /** CRS paranoia level, 1 (default, fewest false positives) to 4. */
  paranoia: 1 | 2 | 3 | 4;
  /** Inbound anomaly score that blocks (CRS default 5: one critical rule). */
  anomalyThreshold: number;
  /** Log what would be blocked without blocking. */
  detectionOnly: boolean;
  bodyLimitBytes: number;
  headerBufferBytes: number;
  jsonMaxDepth: number;
  clientTimeoutSeconds: number;
  upstreamTimeoutSeconds: number;
  ratePerIp: number;
  burstPerIp: number;
  connectionsPerIp: number;
  workerProcesses: number | 'auto';
  workerConnections: number;
  /** nginx `user` for the worker processes (only meaningful when started as root). */
  workerUser?: string;
  accessLog: boolean;
  hstsMaxAgeSeconds: number;
}

export const GATEWAY_DEFAULTS = {
  paranoia: 1,
  anomalyThreshold: 5,
  detectionOnly: false,
  headerBufferBytes: 16 * 1024,
  clientTimeoutSeconds: 10,
  upstreamTimeoutSeconds: 35,
  // A flood guard per client address, above what the API's own per-IP limit lets through.
  ratePerIp: 5000,
  burstPerIp: 10_000,
  connectionsPerIp: 256,
  workerProcesses: 'auto',
  workerConnections: 4096,
  accessLog: true,
  hstsMaxAgeSeconds: 31_536_000,
} as const;

/** Paths the rendered configuration lives at, relative to the gateway directory. */
export const GATEWAY_FILES = {
  nginxConf: 'nginx.conf',
  pid: 'run/nginx.pid',
  auditLog: 'logs/modsec_audit.json',
  errorLog: 'logs/error.log',
  accessLog: 'logs/access.log',
  events: 'security-events.jsonl',
  offset: 'logs/modsec_audit.offset',
} as const;

// Mozilla's "intermediate" TLS profile: TLS 1.2 with forward-secret AEAD suites, and TLS 1.3.
const TLS_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** A value going into nginx or ModSecurity syntax: no quotes, no variables, no statement ends. */
function safe(name: string, v: string): string {
  if (!/^[^"'`$;{}\\\r\n\t]+$/.test(v))
    throw new Error(
      `gateway: ${name} contains characters that are not allowed in the configuration: ${JSON.stringify(v)}`,
    );
  return v;
}

function hostPort(h: { host: string; port: number }): string {
  const host = safe('host', h.host);
  if (!/^[A-Za-z0-9.:-]+$/.test(host)) throw new Error(`gateway: bad host "${host}"`);
  if (!Number.isInteger(h.port) || h.port < 1 || h.port > 65535) throw new Error(`gateway: bad port ${h.port}`);
  return host.includes(':') ? `[${host}]:${h.port}` : `${host}:${h.port}`;
}

export function fill(template: string, values: Record<string, string>): string {
  const out = template.replace(/\{\{([A-Z_]+)\}\}/g, (_m, k: string) => {
    if (!(k in values)) throw new Error(`gateway: template placeholder {{${k}}} has no value`);
    return values[k];
  });
  return out;
}

/** The files of a gateway directory, by path relative to it. */
export function renderGatewayConfig(s: GatewaySettings, pre: GatewayPrerequisites): Map<string, string> {
  const dir = safe('gateway directory', s.dir);
  const t = (f: string) => readFileSync(join(TEMPLATE_DIR, f), 'utf8');
  const tls = s.tls
    ? [
        `        ssl_certificate "${safe('TLS certificate', s.tls.certFile)}";`,
        `        ssl_certificate_key "${safe('TLS key', s.tls.keyFile)}";`,
        '        ssl_protocols TLSv1.2 TLSv1.3;',
        `        ssl_ciphers ${TLS_CIPHERS};`,
        '        ssl_prefer_server_ciphers off;',
        '        ssl_session_cache shared:tp_tls:10m;',
        '        ssl_session_timeout 1d;',
        '        ssl_session_tickets off;',
      ].join('\n')
    : '';
  const int = (name: string, v: number, min: number, max: number) => {
    if (!Number.isInteger(v) || v < min || v > max)
      throw new Error(`gateway: ${name} must be an integer from ${min} to ${max}, got ${v}`);
    return String(v);
  };
  const values: Record<string, string> = {
    DIR: dir,
    USER_DIRECTIVE: s.workerUser
      ? `user ${safe('worker user', s.workerUser)};`
      : '# (no `user`: the workers run as the user that started nginx)',
    WORKER_PROCESSES: s.workerProcesses === 'auto' ? 'auto' : int('worker processes', s.workerProcesses, 1, 256),
    WORKER_CONNECTIONS: int('worker connections', s.workerConnections, 16, 1_000_000),
    MODSECURITY_MODULE: safe('ModSecurity module', pre.modsecurityModule),
    ACCESS_LOG: s.accessLog ? `"${dir}/logs/access.log" tillpoint` : 'off',
    BODY_LIMIT_BYTES: int('body limit', s.bodyLimitBytes, 1024, 1024 * 1024 * 1024),
    HEADER_BUFFER_BYTES: int('header buffer', s.headerBufferBytes, 1024, 1024 * 1024),
    CLIENT_TIMEOUT_SECONDS: int('client timeout', s.clientTimeoutSeconds, 1, 3600),
    UPSTREAM_TIMEOUT_SECONDS: int('upstream timeout', s.upstreamTimeoutSeconds, 1, 3600),
    RATE_PER_IP: int('rate per IP', s.ratePerIp, 1, 10_000_000),
    BURST_PER_IP: int('burst per IP', s.burstPerIp, 0, 10_000_000),
    CONN_PER_IP: int('connections per IP', s.connectionsPerIp, 1, 10_000_000),
    UPSTREAM_SERVERS: s.upstreams.map((u) => `        server ${hostPort(u)};`).join('\n'),
    LISTEN: hostPort(s.listen),
    LISTEN_FLAGS: s.tls ? ' ssl http2' : '',
    TLS: tls,
  };
  if (s.upstreams.length === 0) throw new Error('gateway: at least one upstream is needed');

  const crs = crsRuleFiles(pre.crsRulesDir);
  const include = (files: string[]) => files.map((f) => `Include "${safe('CRS rule file', f)}"`).join('\n');
  const modsecValues: Record<string, string> = {
    DIR: dir,
    RULE_ENGINE: s.detectionOnly ? 'DetectionOnly' : 'On',
    BODY_LIMIT_BYTES: values.BODY_LIMIT_BYTES,
    JSON_MAX_DEPTH: int('JSON depth', s.jsonMaxDepth, 1, 10_000),
    UNICODE_MAPPING: safe('unicode mapping', pre.unicodeMapping),
    PARANOIA: int('paranoia level', s.paranoia, 1, 4),
    ANOMALY_THRESHOLD: int('anomaly threshold', s.anomalyThreshold, 1, 1000),
    CRS_VERSION: pre.crsVersion,
    CRS_DIR: safe('CRS directory', pre.crsRulesDir),
    CRS_REQUEST_RULES: include(crs.request),
    CRS_BLOCKING_RULES: include(crs.blocking),
    CRS_RESPONSE_RULES: include(crs.response),
  };
  const headersValues: Record<string, string> = {
    HSTS:
      s.tls && s.hstsMaxAgeSeconds > 0
        ? `add_header Strict-Transport-Security "max-age=${int('HSTS max-age', s.hstsMaxAgeSeconds, 1, 1e9)}; includeSubDomains" always;`
        : '',
  };

  const files = new Map<string, string>();
  files.set('nginx.conf', fill(t('nginx.conf.template'), values));
  files.set('error-headers.conf', fill(t('error-headers.conf.template'), headersValues));
  for (const f of readdirSync(join(TEMPLATE_DIR, 'modsecurity'))) {
    const text = t(`modsecurity/${f}`);
    if (f.endsWith('.template')) files.set(`modsecurity/${f.slice(0, -'.template'.length)}`, fill(text, modsecValues));
    else if (f.endsWith('.conf')) files.set(`modsecurity/${f}`, text);
  }
  return files;
}

/**
 * Writes the rendered files and the directories nginx needs. When the workers run as another
 * user (nginx started as root), the directories they write to are handed to that user.
 */
export function writeGatewayFiles(dir: string, files: Map<string, string>, workerIds?: { uid: number; gid: number }) {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const d of [
    'logs',
    'run',
    'modsecurity',
    'tmp',
    'tmp/body',
    'tmp/proxy',
    'tmp/fastcgi',
    'tmp/uwsgi',
    'tmp/scgi',
    'tmp/modsecurity',
  ]) {
    const p = join(dir, d);
    mkdirSync(p, { recursive: true, mode: d === 'logs' ? 0o700 : 0o755 });
    if (workerIds && d.startsWith('tmp')) chownSync(p, workerIds.uid, workerIds.gid);
  }
  // The socket directory must be reachable by the workers; nginx makes the socket itself 0666.
  chmodSync(join(dir, 'run'), 0o755);
  for (const [rel, text] of files) writeFileSync(join(dir, rel), text, { mode: 0o644 });
}
