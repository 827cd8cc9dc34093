import pino, { type Logger } from 'pino';
import { traceFields } from './tracing.ts';

// JSON logs. Redaction is configured here, once: any field with one of these names is
// censored wherever it appears, so a handler cannot leak a VPA or a key by logging an object.
// Free text should never carry PII (services log ids); the scrubber below is the safety net.
export const REDACTED_KEYS = [
  // credentials and key material
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-tillpoint-signature',
  'x-vault-token',
  'x-amz-security-token',
  'x-csrf-token',
  'password',
  'passphrase',
  'secret',
  'client_secret',
  'secretAccessKey',
  'secret_access_key',
  'sessionToken',
  'session_token',
  'access_token',
  'refresh_token',
  'api_key',
  'apiKey',
  'key',
  'private_key',
  'privateKey',
  'keyring',
  'dek',
  'kek',
  'plaintext',
  'wrapped_key',
  'token',
  'totp',
  'otp',
  // personal data
  'payer_vpa',
  'payerVpa',
  'vpa',
  'phone',
  'mobile',
  'msisdn',
  'customer_phone',
  'customerPhone',
  'customer_name',
  'customerName',
  'payer_name',
  'payerName',
  'email',
  'upi_uri',
  'upiUri',
  'account_number',
  'accountNumber',
  'bank_account',
  'bankAccount',
  'settlement_account',
  'ifsc',
  // card data (PCI DSS 3.3.1, 3.4.1)
  'pan',
  'card_number',
  'cardNumber',
  'cvv',
  'cvv2',
  'cvc',
  'pin',
  'pin_block',
  'pinBlock',
  'track1',
  'track2',
  'track_data',
  'trackData',
];

// Every log line is walked: a sensitive key at any depth is censored, and values that look like a VPA, a card number (13-19
// digits passing the Luhn check) or an Indian mobile number are masked even in free text and in
// error messages, so a value that slipped into a message cannot reach the log either.
const SENSITIVE = new Set(REDACTED_KEYS.map((k) => k.toLowerCase().replace(/[^a-z0-9]/g, '')));
const VPA_IN_TEXT = /(?<![A-Za-z0-9._-])([A-Za-z0-9._-]{2})[A-Za-z0-9._-]{0,254}@([A-Za-z][A-Za-z0-9]{1,63})/g;
const DIGITS_IN_TEXT = /(?<![A-Za-z0-9_])(?:\d[ -]?){12,18}\d(?![A-Za-z0-9_])/g;
const MOBILE_IN_TEXT = /(?<![\w+])(?:\+91[ -]?)?[6-9]\d{9}(?!\w)/g;

function luhn(d: string): boolean {
  let sum = 0;
  for (let i = 0; i < d.length; i++) {
    let n = d.charCodeAt(d.length - 1 - i) - 48;
    if (i % 2 === 1 && (n *= 2) > 9) n -= 9;
    sum += n;
  }
  return sum % 10 === 0;
}

/** Masks VPAs, card numbers and mobile numbers inside free text. */
export function scrubText(s: string): string {
  if (s.length < 10) return s;
  return s
    .replace(DIGITS_IN_TEXT, (m) => {
      const d = m.replace(/[ -]/g, '');
      return d.length >= 13 && luhn(d) ? `${d.slice(0, 6)}${'*'.repeat(d.length - 10)}${d.slice(-4)}` : m;
    })
    .replace(MOBILE_IN_TEXT, (m) => `******${m.slice(-4)}`)
    .replace(VPA_IN_TEXT, (_m, first: string, psp: string) => `${first}****@${psp}`);
}

const MAX_DEPTH = 12;

/** A copy of `v` with sensitive keys censored and free text scrubbed, at any depth. */
export function redactDeep(v: unknown, depth = 0): unknown {
  if (typeof v === 'string') return scrubText(v);
  if (v === null || typeof v !== 'object' || depth > MAX_DEPTH) return v;
  if (v instanceof Error) {
    const e = v as Error & { code?: unknown };
    return {
      type: e.name,
      message: scrubText(e.message),
      ...(e.code !== undefined ? { code: e.code } : {}),
      ...(e.stack ? { stack: scrubText(e.stack) } : {}),
    };
  }
  if (Array.isArray(v)) return v.map((x) => redactDeep(x, depth + 1));
  if (v instanceof Date || Buffer.isBuffer(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    out[k] = SENSITIVE.has(k.toLowerCase().replace(/[^a-z0-9]/g, '')) ? '[redacted]' : redactDeep(x, depth + 1);
  }
  return out;
}

/**
 * The process's logger. Each line's object goes through redactDeep() (sensitive keys at any
 * depth, PII in free text). pino's own `redact` is given the keys at the top level only, which
 * is what covers a child logger's bindings (pino passes them through no formatter): with
 * wildcard paths for deeper levels as well it cost ~140 µs per line, against ~3.5 µs now
 * (bench/PROFILE.md), and redactDeep() already covers every depth.
 *
 * Lines are written asynchronously to stdout unless a destination is given: pino buffers them
 * and writes in the background instead of making one blocking write() per line, and flushes
 * what is buffered when the process exits. A process killed outright (SIGKILL, OOM) can lose its
 * last few lines; the audit trail is in the database, not in these logs.
 */
export function createLogger(opts: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: { service: 'tillpoint' },
      timestamp: pino.stdTimeFunctions.isoTime,
      // The active trace's ids on every line written inside a span (nothing while tracing is off).
      mixin: traceFields,
      redact: {
        paths: REDACTED_KEYS.map((k) => (/^[A-Za-z_$][\w$]*$/.test(k) ? k : `["${k}"]`)),
        censor: '[redacted]',
      },
      formatters: {
        level: (label) => ({ level: label }),
        log: (obj) => redactDeep(obj) as Record<string, unknown>,
      },
      hooks: {
        // The message text too (and printf-style arguments).
        logMethod(args, method) {
          method.apply(this, args.map((a) => (typeof a === 'string' ? scrubText(a) : a)) as Parameters<typeof method>);
        },
      },
    },
    opts.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

export type { Logger };
