import { Type } from '@sinclair/typebox';
import { DEFAULT_VPA_PATTERN } from '../../platform/mask.ts';
import { ConfigError, defineSettings, intOf, str } from '../../platform/settings.ts';

// The payments module's settings: limits, expiries, the status-check cadence, the refund window
// and the VPA syntax. Composed into the Config by src/config.ts.

export interface PaymentsConfig {
  payments: {
    maxAmountPaise: number;
    qrExpirySeconds: number;
    collectExpirySeconds: number;
    statusCheckFirstAfterSeconds: number;
    statusCheckIntervalSeconds: number;
    statusCheckMax: number;
    refundWindowDays: number;
    /** An operator's refund above this many paise waits for a second operator's approval. */
    refundApprovalThresholdPaise: number;
    vpaPattern: RegExp;
  };
}

declare module '../../platform/config.ts' {
  interface Config extends PaymentsConfig {}
}

const schema = Type.Object({
  PAYMENT_MAX_AMOUNT_PAISE: Type.Integer({
    minimum: 1,
    default: 10_000_000,
    description: "Per-transaction limit in paise (₹1,00,000, NPCI's default).",
  }),
  QR_EXPIRY_SECONDS: Type.Integer({
    minimum: 30,
    maximum: 86_400,
    default: 300,
    description: 'When an unpaid dynamic QR expires.',
  }),
  COLLECT_EXPIRY_SECONDS: Type.Integer({
    minimum: 60,
    maximum: 7 * 86_400,
    default: 480,
    description: 'When an unanswered collect request expires.',
  }),
  STATUS_CHECK_FIRST_AFTER_SECONDS: Type.Integer({
    minimum: 0,
    default: 90,
    description: 'The UPI status-check cadence: the first check of a pending payment, after this long.',
  }),
  STATUS_CHECK_INTERVAL_SECONDS: Type.Integer({
    minimum: 0,
    default: 600,
    description: 'Then every this long…',
  }),
  STATUS_CHECK_MAX: Type.Integer({ minimum: 0, maximum: 10, default: 3, description: '…at most this many times.' }),
  REFUND_WINDOW_DAYS: Type.Integer({
    minimum: 1,
    default: 180,
    description: 'Refunds allowed this long after success.',
  }),
  REFUND_APPROVAL_THRESHOLD_PAISE: Type.Integer({
    minimum: 0,
    default: 1_000_000,
    description:
      "An operator's refund above this (paise; default ₹10,000) becomes a request a second operator with refunds:approve must approve (four eyes); 0: every operator refund. API-key and terminal refunds are not gated.",
  }),
  VPA_PATTERN: Type.String({
    default: DEFAULT_VPA_PATTERN,
    description: 'Regular expression a VPA must match (payments, merchants, rewards, tokens).',
  }),
});

export const paymentsSettings = defineSettings({
  title: 'Payments',
  source: 'src/modules/payments/payments.settings.ts',
  schema,
  load(env): PaymentsConfig {
    const n = (name: keyof typeof schema.properties) => intOf(schema, env, name);
    let vpaPattern: RegExp;
    try {
      vpaPattern = new RegExp(str(env, 'VPA_PATTERN', DEFAULT_VPA_PATTERN));
    } catch {
      throw new ConfigError('VPA_PATTERN', 'is not a valid regular expression');
    }
    return {
      payments: {
        maxAmountPaise: n('PAYMENT_MAX_AMOUNT_PAISE'),
        qrExpirySeconds: n('QR_EXPIRY_SECONDS'),
        collectExpirySeconds: n('COLLECT_EXPIRY_SECONDS'),
        statusCheckFirstAfterSeconds: n('STATUS_CHECK_FIRST_AFTER_SECONDS'),
        statusCheckIntervalSeconds: n('STATUS_CHECK_INTERVAL_SECONDS'),
        statusCheckMax: n('STATUS_CHECK_MAX'),
        refundWindowDays: n('REFUND_WINDOW_DAYS'),
        refundApprovalThresholdPaise: n('REFUND_APPROVAL_THRESHOLD_PAISE'),
        vpaPattern,
      },
    };
  },
});
