import pino, { type Logger } from 'pino';

// JSON logs. Redaction is configured here, once: any field with one of these names is
// censored wherever it appears (top level or one level down), so a handler cannot leak a
// VPA or a key by logging an object. Free text never carries PII: services log ids.
export const REDACTED_KEYS = [
  'authorization',
  'cookie',
  'set-cookie',
  'x-tillpoint-signature',
  'password',
  'secret',
  'api_key',
  'apiKey',
  'key',
  'token',
  'payer_vpa',
  'payerVpa',
  'vpa',
  'phone',
  'pan',
  'cvv',
  'upi_uri',
  'upiUri',
];

export function redactPaths(keys = REDACTED_KEYS): string[] {
  const paths: string[] = [];
  for (const k of keys) {
    const seg = /^[A-Za-z_$][\w$]*$/.test(k) ? k : `["${k}"]`;
    const dot = seg.startsWith('[') ? '' : '.';
    paths.push(seg, `*${dot}${seg}`, `req.headers${dot}${seg}`, `*.*${dot}${seg}`);
  }
  return paths;
}

export function createLogger(opts: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: { service: 'tillpoint' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: redactPaths(), censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    opts.destination,
  );
}

export type { Logger };
