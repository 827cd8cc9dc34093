import { Type, type Static } from '@sinclair/typebox';

const Id = (prefix: string) => Type.String({ pattern: `^${prefix}_[0-9a-f]{32}$` });
export const MerchantId = Id('mer');
export const StoreId = Id('sto');
export const TerminalId = Id('trm');

/** Where the merchant is paid out. Stored encrypted; answers show it masked. */
export const SettlementAccountIn = Type.Object(
  {
    account_number: Type.String({ pattern: '^[0-9]{9,18}$', description: 'Bank account number, 9-18 digits' }),
    ifsc: Type.String({ pattern: '^[A-Z]{4}0[A-Z0-9]{6}$', description: 'IFSC of the branch, e.g. HDFC0001234' }),
  },
  { additionalProperties: false },
);
const SettlementAccountOut = Type.Union([
  Type.Object({
    account_number: Type.String({ description: 'Masked: the last 4 digits only' }),
    ifsc: Type.String({ description: 'Masked: the bank code only' }),
  }),
  Type.Null(),
]);

export const Merchant = Type.Object({
  id: MerchantId,
  name: Type.String(),
  vpa: Type.String(),
  mcc: Type.String(),
  acquiring_bank: Type.String(),
  status: Type.Union([Type.Literal('active'), Type.Literal('suspended')]),
  settlement_account: SettlementAccountOut,
  created_at: Type.String({ format: 'date-time' }),
});
export type MerchantT = Static<typeof Merchant>;

export const CreateMerchant = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 99, description: 'Shown to the payer as the UPI payee name (pn)' }),
    vpa: Type.String({ minLength: 3, maxLength: 255, description: 'Merchant VPA that receives payments (pa)' }),
    mcc: Type.String({ pattern: '^[0-9]{4}$', description: 'ISO 18245 merchant category code' }),
    acquiring_bank: Type.String({ pattern: '^[A-Z0-9_]{2,20}$' }),
    settlement_account: Type.Optional(SettlementAccountIn),
  },
  { additionalProperties: false },
);
export const UpdateMerchant = Type.Object(
  {
    name: Type.Optional(CreateMerchant.properties.name),
    acquiring_bank: Type.Optional(CreateMerchant.properties.acquiring_bank),
    status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('suspended')])),
    settlement_account: Type.Optional(SettlementAccountIn),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const Store = Type.Object({
  id: StoreId,
  merchant_id: MerchantId,
  name: Type.String(),
  city: Type.Union([Type.String(), Type.Null()]),
  status: Type.Union([Type.Literal('active'), Type.Literal('closed')]),
  created_at: Type.String({ format: 'date-time' }),
});
export type StoreT = Static<typeof Store>;
export const CreateStore = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 120 }),
    city: Type.Optional(Type.String({ minLength: 1, maxLength: 80 })),
  },
  { additionalProperties: false },
);

export const Terminal = Type.Object({
  id: TerminalId,
  merchant_id: MerchantId,
  store_id: StoreId,
  label: Type.Union([Type.String(), Type.Null()]),
  serial: Type.Union([Type.String(), Type.Null()]),
  status: Type.Union([Type.Literal('active'), Type.Literal('disabled')]),
  created_at: Type.String({ format: 'date-time' }),
  online: Type.Boolean({ description: 'Connected to the MQTT broker now (the gateway records it; terminals module)' }),
  last_seen_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
    description:
      'When the platform last heard from the terminal (connect, disconnect, status, requests: at most a minute behind); null if never',
  }),
});
export type TerminalT = Static<typeof Terminal>;
export const CreateTerminal = Type.Object(
  {
    store_id: StoreId,
    label: Type.Optional(Type.String({ minLength: 1, maxLength: 80 })),
    serial: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' })),
  },
  { additionalProperties: false },
);
export const UpdateTerminal = Type.Object(
  {
    label: Type.Optional(Type.String({ minLength: 1, maxLength: 80 })),
    status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('disabled')])),
  },
  { additionalProperties: false, minProperties: 1 },
);
