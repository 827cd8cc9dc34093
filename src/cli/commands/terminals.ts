import { parseArgs } from 'node:util';
import { readFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, loadConfig } from '../../config.ts';
import { withDb, type Command, UsageError } from '../command.ts';

// Terminal identity (enrol, revoke, development secrets), the violations log, and the simulator.

const USAGE = [
  'terminals enroll <terminal_id> [--out DIR] [--days N] [--csr FILE]',
  '  terminals revoke <terminal_id> [--serial HEX] [--reason TEXT]',
  '  terminals secret <terminal_id>',
  '  terminals certs <terminal_id>',
  '  terminals violations [--terminal ID] [--limit N]',
  '  terminals simulate --count N --rate R --duration S [--mqtt-url URL] [--api-url URL] [--api-key KEY] [--merchant mer_…] [--json]',
].join('\n');

function posInt(name: string, raw: string | undefined, dflt: number, max: number): number {
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0 || n > max)
    throw new ConfigError(name, `must be a number above 0 and at most ${max}`);
  return n;
}

export const terminals: Command = {
  name: 'terminals',
  usage: USAGE,
  summary:
    '"enroll" issues a client certificate bound to the terminal and writes the device bundle (client.crt, client.key, ca.crt); "revoke" revokes its certificates (one with --serial) and MQTT secret; "secret" issues a development MQTT secret; "simulate" drives N terminals over MQTT and prints round-trip percentiles.',
  async run(argv) {
    const [sub, ...rest] = argv;
    const { values, positionals } = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        out: { type: 'string' },
        days: { type: 'string' },
        csr: { type: 'string' },
        serial: { type: 'string' },
        reason: { type: 'string' },
        terminal: { type: 'string' },
        limit: { type: 'string' },
        count: { type: 'string' },
        rate: { type: 'string' },
        duration: { type: 'string' },
        'mqtt-url': { type: 'string' },
        'api-url': { type: 'string' },
        'api-key': { type: 'string' },
        merchant: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    });
    const t = await import('../../modules/terminals/index.ts');
    const terminalId = positionals[0];
    const needId = () => {
      if (!terminalId || !t.topics.isTerminalId(terminalId))
        throw new UsageError(`expected a terminal id (trm_…); usage: tillpoint ${USAGE.split('\n')[0]}`);
      return terminalId;
    };
    switch (sub) {
      case 'enroll': {
        const id = needId();
        const days = posInt('--days', values.days, 730, 3650);
        const csrPem = values.csr ? readFileSync(values.csr, 'utf8') : undefined;
        const config = loadConfig();
        const { enrollTerminal, writeBundle } = await t.loadEnrollment();
        const bundle = await withDb((db) =>
          enrollTerminal(db, { pkiDir: config.mqtt.pkiDir, terminalId: id, days, csrPem }),
        );
        const out = resolve(values.out ?? join(config.dataDir, 'terminals', id));
        const files = writeBundle(out, bundle);
        process.stdout.write(
          JSON.stringify({
            terminal_id: id,
            serial: bundle.serial,
            fingerprint_sha256: bundle.fingerprint,
            not_after: bundle.notAfter.toISOString(),
            files,
          }) + '\n',
        );
        if (bundle.keyPem)
          process.stderr.write(
            `${join(out, 'client.key')} is the device's private key: move it onto the terminal and delete this copy.\n`,
          );
        return 0;
      }
      case 'revoke': {
        const id = needId();
        const r = await withDb((db) =>
          t.revokeTerminalCredentials(db, id, { serial: values.serial, reason: values.reason }),
        );
        process.stdout.write(
          JSON.stringify({ terminal_id: id, revoked_certificates: r.certificates, revoked_secrets: r.secrets }) + '\n',
        );
        if (r.certificates.length === 0 && r.secrets === 0) process.stderr.write('nothing to revoke\n');
        else
          process.stderr.write(
            'Gateways close live sessions on revoked credentials within seconds. With an external broker, also publish the CRL: tillpoint pki crl --out <file>\n',
          );
        return 0;
      }
      case 'secret': {
        const id = needId();
        const config = loadConfig();
        const c = await withDb((db) => t.issueMqttSecret(db, id, config.mode));
        process.stdout.write(
          JSON.stringify({ terminal_id: id, mqtt_username: c.username, mqtt_password: c.password }) + '\n',
        );
        process.stderr.write(
          'Shown once. It works on the development listener (MQTT_PORT) only; any previous secret is revoked.\n',
        );
        return 0;
      }
      case 'certs': {
        const id = needId();
        const rows = await withDb((db) => t.listCertificates(db, id));
        for (const r of rows) {
          process.stdout.write(
            JSON.stringify({
              serial: r.serial,
              fingerprint_sha256: r.fingerprint,
              not_before: r.not_before,
              not_after: r.not_after,
              revoked_at: r.revoked_at,
              revoke_reason: r.revoke_reason,
            }) + '\n',
          );
        }
        return 0;
      }
      case 'violations': {
        const limit = posInt('--limit', values.limit, 50, 10_000);
        const rows = await withDb((db) => t.listViolations(db, { terminalId: values.terminal, limit }));
        for (const r of rows) process.stdout.write(JSON.stringify(r) + '\n');
        return 0;
      }
      case 'simulate': {
        const count = Math.floor(posInt('--count', values.count, 10, 20_000));
        const rate = posInt('--rate', values.rate, 5, 10_000);
        const duration = posInt('--duration', values.duration, 10, 86_400);
        const config = loadConfig();
        const demoFile = join(config.dataDir, 'demo.json');
        const demo = existsSync(demoFile)
          ? (JSON.parse(readFileSync(demoFile, 'utf8')) as {
              api_url?: string;
              api_key?: string;
              merchant_id?: string;
              mqtt_url?: string | null;
            })
          : {};
        const apiUrl = values['api-url'] ?? demo.api_url;
        const apiKey = values['api-key'] ?? demo.api_key;
        const mqttUrl = values['mqtt-url'] ?? demo.mqtt_url ?? undefined;
        const merchantId = values.merchant ?? demo.merchant_id;
        for (const [name, v] of [
          ['--api-url', apiUrl],
          ['--api-key', apiKey],
          ['--mqtt-url', mqttUrl],
          ['--merchant', merchantId],
        ] as const) {
          if (!v) throw new ConfigError(name, `is required (or run "npm start" first, which writes ${demoFile})`);
        }
        const { runSimulation, progressLine, formatSummary } = await import('../../tools/fleet-sim/index.ts');
        const tty = process.stderr.isTTY;
        let lastLine = 0;
        const summary = await runSimulation({
          count,
          rate,
          durationSeconds: duration,
          apiUrl: apiUrl!,
          apiKey: apiKey!,
          mqttUrl: mqttUrl!,
          merchantId: merchantId!,
          onProgress: (p) => {
            if (tty) process.stderr.write(`\r${progressLine(p)}\x1b[K`);
            else if (Date.now() - lastLine >= 5000) {
              lastLine = Date.now();
              process.stderr.write(progressLine(p) + '\n');
            }
          },
        });
        if (tty) process.stderr.write('\n');
        process.stdout.write(
          values.json ? JSON.stringify(summary) + '\n' : formatSummary(summary) + '\n' + JSON.stringify(summary) + '\n',
        );
        return summary.failed === 0 && summary.connect_failed === 0 ? 0 : 1;
      }
      default:
        throw new UsageError(`usage:\n  tillpoint ${USAGE.split('\n  ').join('\n  tillpoint ')}`);
    }
  },
};
