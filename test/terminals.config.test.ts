import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { loadConfig, ConfigError } from '../src/config.ts';
import { parseMqtt } from '../src/modules/terminals/index.ts';
import { createTestDb } from '../src/platform/testing.ts';
import { createLogger } from '../src/platform/log.ts';
import { createApp } from '../src/app.ts';
import { loadGateway } from '../src/modules/terminals/index.ts';

const { createTerminalGateway } = await loadGateway();

// The terminal gateway's settings and its place among the roles.

const base = { NODE_ENV: 'test', TILLPOINT_DATA_DIR: '/tmp/tp-data' };

test('MQTT defaults: plain 1883 and mutual-TLS 8883 in development, 16 KiB messages, the CA under the data dir', () => {
  const c = loadConfig({ ...base, NODE_ENV: 'development' }).mqtt;
  assert.equal(c.port, 1883);
  assert.equal(c.tlsPort, 8883);
  assert.equal(c.maxPayloadBytes, 16 * 1024);
  assert.equal(c.pkiDir, '/tmp/tp-data/pki');
  assert.equal(c.caFile, '/tmp/tp-data/pki/ca.crt');
  assert.equal(c.url, undefined);
  assert.equal(c.shareGroup, 'tillpoint');
  const off = loadConfig({ ...base, MQTT_PORT: 'off', MQTTS_PORT: '0', MQTT_MAX_PAYLOAD_BYTES: '4096' }).mqtt;
  assert.equal(off.port, undefined);
  assert.equal(off.tlsPort, 0, '0 = any free port');
  assert.equal(off.maxPayloadBytes, 4096);
});

test('plain MQTT is refused in production, and an external broker must use TLS there', () => {
  const expectError = (env: Record<string, string>, setting: string, mode: 'production' | 'test' = 'test') =>
    assert.throws(
      () => parseMqtt(env, mode, '127.0.0.1', '/data'),
      (e: unknown) => e instanceof ConfigError && e.setting === setting,
      setting,
    );
  expectError({ MQTT_PORT: '1883' }, 'MQTT_PORT', 'production');
  expectError({ MQTT_URL: 'mqtt://broker:1883' }, 'MQTT_URL', 'production');
  expectError({ MQTT_URL: 'http://broker' }, 'MQTT_URL');
  expectError({ MQTT_SHARE_GROUP: 'a/b' }, 'MQTT_SHARE_GROUP');
  expectError({ MQTT_MAX_PAYLOAD_BYTES: '10' }, 'MQTT_MAX_PAYLOAD_BYTES');
  expectError({ MQTT_PORT: 'twelve' }, 'MQTT_PORT');
  const prod = parseMqtt({ MQTT_URL: 'mqtts://broker:8883' }, 'production', '0.0.0.0', '/data');
  assert.equal(prod.port, undefined, 'no plain listener in production, even by default');
  assert.equal(prod.tlsPort, 8883);
  assert.equal(parseMqtt({}, 'production', '0.0.0.0', '/data').port, undefined);
  assert.equal(parseMqtt({ MQTT_PORT: 'off' }, 'production', '0.0.0.0', '/data').port, undefined);
});

test('a production gateway without its certificates does not start, and names the setting', async () => {
  const db = await createTestDb();
  try {
    const dir = mkdtempSync(join(tmpdir(), 'tp-nopki-'));
    const config = { ...loadConfig({ ...base, TERMINAL_PKI_DIR: dir, MQTTS_PORT: '0' }), mode: 'production' as const };
    const gw = createTerminalGateway({ db, config, logger: createLogger({ level: 'silent' }), payments: {} as never });
    await assert.rejects(gw.start(), (e: unknown) => e instanceof ConfigError && e.setting === 'MQTTS_CERT_FILE');
  } finally {
    await db.close();
  }
});

test('the terminal-gateway role runs the broker and the relay, and no HTTP server or worker', async () => {
  const db = await createTestDb();
  const dataDir = mkdtempSync(join(tmpdir(), 'tp-gw-role-'));
  const app = await createApp({
    role: 'terminal-gateway',
    db,
    logger: createLogger({ level: 'silent' }),
    config: loadConfig({ NODE_ENV: 'test', TILLPOINT_DATA_DIR: dataDir, MQTT_PORT: '0', MQTTS_PORT: '0' }),
  });
  try {
    assert.equal(await app.start(), undefined, 'no HTTP');
    assert.equal(app.http, undefined);
    assert.equal(app.worker, undefined);
    const urls = app.gateway!.urls();
    assert.equal(urls.length, 2);
    assert.match(urls[0], /^mqtts:\/\/127\.0\.0\.1:\d+$/);
    assert.match(urls[1], /^mqtt:\/\/127\.0\.0\.1:\d+$/);
    // A development CA was made on first start, and the listener answers (and refuses a stranger).
    await assert.rejects(
      mqtt.connectAsync(urls[1], { clientId: 'not-a-terminal', reconnectPeriod: 0, connectTimeout: 2000 }),
      /Identifier rejected|Not authorized|Bad username/,
    );
  } finally {
    await app.stop();
    await db.close();
  }
});

test('after a gateway restart the SDK reconnects and says its session (and any queued event) was lost', async () => {
  const db = await createTestDb();
  const { newId } = await import('../src/platform/ids.ts');
  const { issueMqttSecret } = await import('../src/modules/terminals/index.ts');
  const { connectTerminal } = await import('../src/tools/terminal-sdk/index.ts');
  const m = newId('merchant');
  const s = newId('store');
  const terminalId = newId('terminal');
  await db.query(
    `INSERT INTO merchants.merchants (id, name, vpa, mcc, acquiring_bank) VALUES ($1, 'Restart Store', 'restart@simbank', '5411', 'SIMBANK')`,
    [m],
  );
  await db.query(`INSERT INTO merchants.stores (id, merchant_id, name) VALUES ($1, $2, 'Main')`, [s, m]);
  await db.query(`INSERT INTO merchants.terminals (id, merchant_id, store_id) VALUES ($1, $2, $3)`, [terminalId, m, s]);
  const { password } = await issueMqttSecret(db, terminalId, 'test');
  const dataDir = mkdtempSync(join(tmpdir(), 'tp-restart-'));
  const start = (port: string) => {
    const gw = createTerminalGateway({
      db,
      config: loadConfig({ NODE_ENV: 'test', TILLPOINT_DATA_DIR: dataDir, MQTT_PORT: port, MQTTS_PORT: 'off' }),
      logger: createLogger({ level: 'silent' }),
      payments: {} as never,
    });
    return gw.start().then(() => gw);
  };
  let gw = await start('0');
  const port = String(gw.ports().plain);
  const term = await connectTerminal({ url: `mqtt://127.0.0.1:${port}`, terminalId, password, reconnectPeriodMs: 100 });
  try {
    assert.equal((await term.ping()).pong, true);
    const lost = new Promise<void>((r) => term.once('session_lost', () => r()));
    await gw.stop();
    gw = await start(port);
    await lost;
    await new Promise((r) => setTimeout(r, 100)); // the SDK subscribes again on reconnect
    assert.equal((await term.ping()).pong, true, 'working again on the new gateway');
  } finally {
    await term.close();
    await gw.stop();
    await db.close();
  }
});
