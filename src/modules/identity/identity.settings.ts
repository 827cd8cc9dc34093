import { Type } from '@sinclair/typebox';
import { defineSettings, intOf } from '../../platform/settings.ts';

// Operators, sessions, MFA and API keys (PCI DSS 7, 8). Each PCI DSS limit may be made stricter,
// never looser (8.2.8, 8.3.4, 8.2.6): the schema's bounds say how far. Composed into the Config
// by src/config.ts.

export interface IdentityConfig {
  sessionIdleMinutes: number;
  sessionAbsoluteHours: number;
  lockoutThreshold: number;
  lockoutMinutes: number;
  inactiveDays: number;
  /** A four-eyes request (refund above the threshold, MFA reset) not decided within this expires. */
  approvalExpiryHours: number;
  /** argon2id cost. */
  passwordHash: { memoryKib: number; timeCost: number };
  /** MFA_ENCRYPTION_KEY: 32 bytes base64 sealing TOTP secrets; required in production, else a key file in the data dir. */
  mfaKey?: string;
}

declare module '../../platform/config.ts' {
  interface Config {
    /** Operators, sessions, MFA and API keys (PCI DSS 7, 8). */
    identity: IdentityConfig;
  }
}

const schema = Type.Object({
  SESSION_IDLE_MINUTES: Type.Integer({
    minimum: 1,
    maximum: 15,
    default: 15,
    description: 'An idle operator session ends after this (PCI DSS 8.2.8).',
  }),
  SESSION_ABSOLUTE_HOURS: Type.Integer({
    minimum: 1,
    maximum: 24,
    default: 12,
    description: 'Any operator session ends after this.',
  }),
  LOCKOUT_THRESHOLD: Type.Integer({
    minimum: 1,
    maximum: 10,
    default: 10,
    description: 'Failed sign-ins that lock an account (PCI DSS 8.3.4).',
  }),
  LOCKOUT_MINUTES: Type.Integer({
    minimum: 30,
    maximum: 24 * 60,
    default: 30,
    description: 'How long a locked account stays locked.',
  }),
  OPERATOR_INACTIVE_DAYS: Type.Integer({
    minimum: 1,
    maximum: 90,
    default: 90,
    description: 'Operators unused this long are disabled (PCI DSS 8.2.6).',
  }),
  APPROVAL_EXPIRY_HOURS: Type.Integer({
    minimum: 1,
    maximum: 7 * 24,
    default: 24,
    description:
      'A request waiting for a second approver (a refund above REFUND_APPROVAL_THRESHOLD_PAISE, an MFA reset) expires after this.',
  }),
  PASSWORD_HASH_MEMORY_KIB: Type.Integer({
    minimum: 64,
    maximum: 4 * 1024 * 1024,
    default: 19_456,
    defaultText: '`19456` (`1024` in test)',
    description: "argon2id memory cost; at least OWASP's 19456 (19 MiB) in production.",
  }),
  PASSWORD_HASH_TIME_COST: Type.Integer({
    minimum: 1,
    maximum: 20,
    default: 2,
    defaultText: '`2` (`1` in test)',
    description: 'argon2id passes; at least 2 in production.',
  }),
  MFA_ENCRYPTION_KEY: Type.String({
    defaultText: 'a key file under the data dir (not in production)',
    fromFile: true,
    description: '32-byte key, base64, sealing TOTP secrets. Required in production.',
  }),
});

export const identitySettings = defineSettings({
  title: 'Identity (operators, sessions)',
  source: 'src/modules/identity/identity.settings.ts',
  schema,
  load(env, { mode }) {
    const n = (name: keyof typeof schema.properties, o?: { default?: number; minimum?: number }) =>
      intOf(schema, env, name, o);
    const prod = mode === 'production';
    const test = mode === 'test';
    return {
      identity: {
        sessionIdleMinutes: n('SESSION_IDLE_MINUTES'),
        sessionAbsoluteHours: n('SESSION_ABSOLUTE_HOURS'),
        lockoutThreshold: n('LOCKOUT_THRESHOLD'),
        lockoutMinutes: n('LOCKOUT_MINUTES'),
        inactiveDays: n('OPERATOR_INACTIVE_DAYS'),
        approvalExpiryHours: n('APPROVAL_EXPIRY_HOURS'),
        // OWASP's argon2id floor (19 MiB, 2 passes) in production; tests may go cheaper to stay quick.
        passwordHash: {
          memoryKib: n('PASSWORD_HASH_MEMORY_KIB', {
            default: test ? 1024 : undefined,
            minimum: prod ? 19_456 : undefined,
          }),
          timeCost: n('PASSWORD_HASH_TIME_COST', { default: test ? 1 : undefined, minimum: prod ? 2 : undefined }),
        },
        mfaKey: env.MFA_ENCRYPTION_KEY || undefined,
      } satisfies IdentityConfig,
    };
  },
});
