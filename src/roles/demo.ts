import { writeFileSync, readFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Db } from '../platform/db.ts';
import { newId } from '../platform/ids.ts';
import { createApiKey } from '../modules/identity/index.ts';
import { PERMISSIONS } from '../platform/principal.ts';
import { issueDemoTerminalSecrets } from '../modules/terminals/index.ts';
import { ensureDemoProgram } from '../modules/rewards/index.ts';

// Demo data for `npm start` in development: one merchant with a store, two terminals and a
// partner API key. Loaded once: the merchant's fixed VPA marks it. The key is shown once, so
// it lives in <data dir>/demo.json; if that file is lost, a fresh key is issued.

export const DEMO_MERCHANT_VPA = 'demo.store@simbank';

export interface DemoInfo {
  api_url: string;
  api_key: string;
  merchant_id: string;
  terminal_ids: string[];
  /** Where the demo terminals connect (the development MQTT listener), or null when no gateway runs here. */
  mqtt_url?: string | null;
  /** MQTT credentials of the demo terminals (development listener: username = terminal id). */
  terminals?: { id: string; mqtt_username: string; mqtt_password: string }[];
  /** Development only: an operator for the console (all platform roles), already enrolled in TOTP. */
  operator?: { email: string; password: string; totp_secret: string };
}

/** What loadDemo needs to make the demo operator (the identity service, in development mode only). */
export interface DemoOperatorMaker {
  createDemoOperator(input: {
    email: string;
    name: string;
    roles: string[];
    password: string;
  }): Promise<{ id: string; totpSecret: Buffer }>;
}

async function demoOperator(maker: DemoOperatorMaker): Promise<NonNullable<DemoInfo['operator']>> {
  const { temporaryPassword, ROLE_NAMES, base32Encode } = await import('../modules/identity/index.ts');
  const email = `demo.operator.${Math.random().toString(36).slice(2, 8)}@example.com`;
  const password = temporaryPassword();
  const made = await maker.createDemoOperator({ email, name: 'Demo Operator', roles: [...ROLE_NAMES], password });
  return { email, password, totp_secret: base32Encode(made.totpSecret) };
}

export async function loadDemo(
  db: Db,
  opts: { dataDir: string; apiUrl: string; mqttUrl?: string | null; operator?: DemoOperatorMaker },
): Promise<{ info: DemoInfo; created: boolean; file: string }> {
  const file = join(opts.dataDir, 'demo.json');
  const existing = await db.query<{ id: string }>(`SELECT id FROM merchants.merchants WHERE vpa = $1`, [
    DEMO_MERCHANT_VPA,
  ]);
  if (existing.rows[0] && existsSync(file)) {
    // Rewards: 1 point per full ₹10, no pending period (also for demo data made before rewards existed).
    await ensureDemoProgram(db, { id: existing.rows[0].id, mcc: '5411' });
    const info = {
      ...(JSON.parse(readFileSync(file, 'utf8')) as DemoInfo),
      api_url: opts.apiUrl,
      mqtt_url: opts.mqttUrl ?? null,
    };
    // Secrets are shown once: a demo.json from before the terminal gateway gets them now.
    info.terminals ??= await issueDemoTerminalSecrets(db, info.terminal_ids);
    if (opts.operator && !info.operator) info.operator = await demoOperator(opts.operator);
    writeFileSync(file, JSON.stringify(info, null, 2) + '\n', { mode: 0o600 });
    return { info, created: false, file };
  }
  const info = await db.tx(async (tx) => {
    let merchantId = existing.rows[0]?.id;
    let terminalIds: string[];
    if (!merchantId) {
      merchantId = newId('merchant');
      await tx.query(
        `INSERT INTO merchants.merchants (id, name, vpa, mcc, acquiring_bank) VALUES ($1, 'Demo Kirana Store', $2, '5411', 'SIMBANK')`,
        [merchantId, DEMO_MERCHANT_VPA],
      );
      const storeId = newId('store');
      await tx.query(
        `INSERT INTO merchants.stores (id, merchant_id, name, city) VALUES ($1, $2, 'MG Road', 'Bengaluru')`,
        [storeId, merchantId],
      );
      terminalIds = [newId('terminal'), newId('terminal')];
      for (const [i, id] of terminalIds.entries()) {
        await tx.query(`INSERT INTO merchants.terminals (id, merchant_id, store_id, label) VALUES ($1, $2, $3, $4)`, [
          id,
          merchantId,
          storeId,
          `Till ${i + 1}`,
        ]);
      }
    } else {
      const t = await tx.query<{ id: string }>(
        `SELECT id FROM merchants.terminals WHERE merchant_id = $1 ORDER BY id`,
        [merchantId],
      );
      terminalIds = t.rows.map((r) => r.id);
    }
    const key = await createApiKey(tx, { name: 'demo partner key', merchantId: null, permissions: PERMISSIONS });
    return { api_url: opts.apiUrl, api_key: key.key, merchant_id: merchantId, terminal_ids: terminalIds };
  });
  await ensureDemoProgram(db, { id: info.merchant_id, mcc: '5411' });
  Object.assign(info, {
    mqtt_url: opts.mqttUrl ?? null,
    terminals: await issueDemoTerminalSecrets(db, info.terminal_ids),
  });
  if (opts.operator) (info as DemoInfo).operator = await demoOperator(opts.operator);
  mkdirSync(opts.dataDir, { recursive: true });
  writeFileSync(file, JSON.stringify(info, null, 2) + '\n', { mode: 0o600 });
  return { info, created: true, file };
}
