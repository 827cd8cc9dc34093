import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { ConfigError, loadConfig } from '../../config.ts';
import { withDb, type Command, UsageError } from '../command.ts';

// The terminal CA. Lives in TERMINAL_PKI_DIR (default <data dir>/pki); ca.key never leaves it.

const USAGE = [
  'pki init [--hostnames localhost,127.0.0.1,::1] [--organization NAME] [--force]',
  '  pki gateway-cert [--name tillpoint-gateway[-N]] [--days N]',
  '  pki crl [--out FILE]',
  '  pki mosquitto-config --port N --out DIR [--host ADDR] [--gateways NAME,…] [--crl FILE] [--persistence DIR] [--run-as USER]',
].join('\n');

export const pki: Command = {
  name: 'pki',
  usage: USAGE,
  summary:
    'Terminal CA: "init" creates the CA and the embedded broker\'s server certificate (names from --hostnames); "gateway-cert" issues the gateway\'s client certificate for an external broker; "crl" writes the revocation list for brokers that check one; "mosquitto-config" writes a Mosquitto config and ACL that enforce the terminal rules.',
  async run(argv) {
    const [sub, ...rest] = argv;
    const { values } = parseArgs({
      args: rest,
      options: {
        hostnames: { type: 'string' },
        organization: { type: 'string' },
        force: { type: 'boolean', default: false },
        days: { type: 'string' },
        out: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        name: { type: 'string' },
        gateways: { type: 'string' },
        crl: { type: 'string' },
        persistence: { type: 'string' },
        'run-as': { type: 'string' },
      },
    });
    const config = loadConfig();
    const dir = config.mqtt.pkiDir;
    const { loadPki, loadEnrollment } = await import('../../modules/terminals/index.ts');
    switch (sub) {
      case 'init': {
        const { initPki, pkiFiles } = await loadPki();
        const hostnames = values.hostnames
          ?.split(',')
          .map((h) => h.trim())
          .filter(Boolean);
        if (hostnames && hostnames.length === 0)
          throw new ConfigError('--hostnames', 'needs at least one name or address');
        const written = await initPki(dir, { hostnames, force: values.force, organization: values.organization });
        if (written.length === 0)
          process.stdout.write(
            `terminal CA already in ${dir} (use --force to replace it: every enrolled terminal would need a new certificate)\n`,
          );
        for (const f of written) process.stdout.write(`wrote ${f}\n`);
        if (written.includes(pkiFiles(dir).caKey))
          process.stderr.write(`Keep ${pkiFiles(dir).caKey} secret: whoever holds it can mint terminal identities.\n`);
        return 0;
      }
      case 'gateway-cert': {
        const days = values.days === undefined ? 825 : Number(values.days);
        if (!Number.isInteger(days) || days < 1 || days > 3650)
          throw new ConfigError('--days', 'must be an integer from 1 to 3650');
        const { issueGatewayCertificate } = await loadEnrollment();
        const name = values.name ?? 'tillpoint-gateway';
        const f = await issueGatewayCertificate(dir, days, name).catch((e: Error) => {
          throw new ConfigError('--name', e.message);
        });
        process.stdout.write(
          `wrote ${f.cert}\nwrote ${f.key}\nSet MQTT_CLIENT_CERT_FILE=${f.cert} MQTT_CLIENT_KEY_FILE=${f.key} for this gateway replica (CN ${name}); each replica gets its own name.\n`,
        );
        return 0;
      }
      case 'crl': {
        const { currentCrl } = await loadEnrollment();
        const pem = await withDb((db) => currentCrl(db, dir));
        if (values.out) {
          writeFileSync(values.out, pem);
          process.stdout.write(`wrote ${values.out}\n`);
        } else process.stdout.write(pem);
        return 0;
      }
      case 'mosquitto-config': {
        const port = Number(values.port);
        if (!Number.isInteger(port) || port < 1 || port > 65535)
          throw new ConfigError('--port', 'is required: the port Mosquitto listens on (mutual TLS)');
        if (!values.out) throw new ConfigError('--out', 'is required: the directory for mosquitto.conf and acl');
        const { writeMosquittoConfig } = await import('../../modules/terminals/index.ts');
        const { resolve } = await import('node:path');
        const files = writeMosquittoConfig({
          port,
          host: values.host,
          pkiDir: dir,
          outDir: resolve(values.out),
          crlFile: values.crl && resolve(values.crl),
          persistenceDir: values.persistence && resolve(values.persistence),
          runAs: values['run-as'],
          maxPacketBytes: 4 * config.mqtt.maxPayloadBytes + 1024,
          gateways: values.gateways
            ?.split(',')
            .map((g) => g.trim())
            .filter(Boolean),
        });
        process.stdout.write(
          `wrote ${files.config}\nwrote ${files.acl}\nStart it with: mosquitto -c ${files.config}\n`,
        );
        return 0;
      }
      default:
        throw new UsageError(`usage:\n  tillpoint ${USAGE.split('\n  ').join('\n  tillpoint ')}`);
    }
  },
};
