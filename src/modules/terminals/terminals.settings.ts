import { resolve } from 'node:path';
import { Type } from '@sinclair/typebox';
import { ConfigError, defineSettings, intOf, listenPort, str, type Env, type Mode } from '../../platform/settings.ts';

// The terminal gateway's settings: an embedded MQTT broker or an external one, the device PKI,
// the outbox relay. Composed into the Config by src/config.ts.

export interface MqttConfig {
  /** Embedded broker, plain MQTT with per-terminal secrets (development only). undefined = off; 0 = any free port. */
  port?: number;
  /** Embedded broker, MQTT over TLS with client certificates (mutual TLS). undefined = off; 0 = any free port. */
  tlsPort?: number;
  host: string;
  /** External broker (Mosquitto, EMQX, AWS IoT Core). When set, no embedded broker is started. */
  url?: string;
  /** Shared-subscription group the gateway replicas join on the external broker. */
  shareGroup: string;
  /** Terminal CA and the embedded broker's server certificate (`tillpoint pki init`). */
  pkiDir: string;
  tlsCertFile: string;
  tlsKeyFile: string;
  caFile: string;
  /** The gateway's own identity towards an external broker (optional; mqtts with client certificate). */
  clientCertFile?: string;
  clientKeyFile?: string;
  /** CA that signed the external broker's server certificate; default: the system's trust store. */
  brokerCaFile?: string;
  maxPayloadBytes: number;
  outboxPollMs: number;
  outboxBatchSize: number;
  requestRetentionHours: number;
}

declare module '../../platform/config.ts' {
  interface Config {
    /** Terminal gateway: embedded MQTT broker or an external one, device PKI, outbox relay. */
    mqtt: MqttConfig;
  }
}

const schema = Type.Object({
  MQTT_PORT: Type.Integer({
    minimum: 0,
    maximum: 65535,
    defaultText: '`1883` (refused in production)',
    description:
      'Embedded broker, plain MQTT with per-terminal secrets (development only); `off` for none, `0` for any free port.',
  }),
  MQTTS_PORT: Type.Integer({
    minimum: 0,
    maximum: 65535,
    default: 8883,
    description:
      'Embedded broker, MQTT over TLS with client certificates (mutual TLS); `off` for none, `0` for any free port.',
  }),
  MQTT_HOST: Type.String({ defaultText: '`HOST`', description: 'Listen address of the embedded broker.' }),
  MQTT_URL: Type.String({
    description:
      'External broker (Mosquitto, EMQX, AWS IoT Core): `mqtt://`, `mqtts://`, `ws://`, `wss://` (TLS in production). When set, no embedded broker is started.',
  }),
  MQTT_SHARE_GROUP: Type.String({
    default: 'tillpoint',
    description:
      'Shared-subscription group the gateway replicas join on the external broker (1-64 of A-Z a-z 0-9 _ -).',
  }),
  TERMINAL_PKI_DIR: Type.String({
    defaultText: '`<data dir>/pki`',
    description: "Terminal CA and the embedded broker's server certificate (`tillpoint pki init`).",
  }),
  MQTTS_CERT_FILE: Type.String({
    defaultText: '`<pki dir>/server.crt`',
    description: "The embedded broker's TLS certificate.",
  }),
  MQTTS_KEY_FILE: Type.String({ defaultText: '`<pki dir>/server.key`', description: "The embedded broker's TLS key." }),
  TERMINAL_CA_FILE: Type.String({
    defaultText: '`<pki dir>/ca.crt`',
    description: 'CA that signs terminal certificates (mutual TLS).',
  }),
  MQTT_CLIENT_CERT_FILE: Type.String({
    description: "The gateway's own client certificate towards an external broker (mqtts with client certificate).",
  }),
  MQTT_CLIENT_KEY_FILE: Type.String({ description: 'Its key.' }),
  MQTT_CA_FILE: Type.String({
    defaultText: 'system CAs',
    description: "CA that signed the external broker's server certificate.",
  }),
  MQTT_MAX_PAYLOAD_BYTES: Type.Integer({
    minimum: 1024,
    maximum: 1024 * 1024,
    default: 16 * 1024,
    description: 'Largest MQTT message accepted from a terminal.',
  }),
  TERMINAL_OUTBOX_POLL_MS: Type.Integer({
    minimum: 10,
    maximum: 60_000,
    default: 100,
    description: 'How often the outbox relay looks for events to publish to terminals.',
  }),
  TERMINAL_OUTBOX_BATCH_SIZE: Type.Integer({
    minimum: 1,
    maximum: 10_000,
    default: 100,
    description: 'Outbox events published per poll.',
  }),
  TERMINAL_REQUEST_RETENTION_HOURS: Type.Integer({
    minimum: 1,
    maximum: 24 * 90,
    default: 24,
    description: "How long terminals' request ids are kept (a retried request within it gets the same answer).",
  }),
});

export const terminalsSettings = defineSettings({
  title: 'Terminals (MQTT)',
  source: 'src/modules/terminals/terminals.settings.ts',
  schema,
  load: (env, ctx) => ({ mqtt: parseMqtt(env, ctx.mode, ctx.host, ctx.dataDir) }),
});

/** The MQTT settings alone (loadConfig calls it; tests of the production rules call it directly). */
export function parseMqtt(env: Env, mode: Mode, host: string, dataDir: string): MqttConfig {
  const url = env.MQTT_URL || undefined;
  if (url) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new ConfigError('MQTT_URL', 'is not a URL');
    }
    if (!['mqtt:', 'mqtts:', 'ws:', 'wss:'].includes(u.protocol))
      throw new ConfigError('MQTT_URL', 'must start with mqtt://, mqtts://, ws:// or wss://');
    // PCI DSS 4.2.1: terminal traffic is encrypted in transit in production.
    if (mode === 'production' && !['mqtts:', 'wss:'].includes(u.protocol))
      throw new ConfigError('MQTT_URL', 'must use TLS (mqtts:// or wss://) in production');
  }
  // Plain MQTT authenticates with a shared secret over cleartext: development and tests only.
  if (mode === 'production' && env.MQTT_PORT && env.MQTT_PORT !== 'off') {
    throw new ConfigError(
      'MQTT_PORT',
      'plain MQTT is refused in production; terminals connect with mutual TLS on MQTTS_PORT',
    );
  }
  const shareGroup = str(env, 'MQTT_SHARE_GROUP', 'tillpoint');
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(shareGroup))
    throw new ConfigError('MQTT_SHARE_GROUP', 'must be 1-64 letters, digits, _ or -');
  const pkiDir = resolve(str(env, 'TERMINAL_PKI_DIR', resolve(dataDir, 'pki')));
  const file = (name: string) => (env[name] ? resolve(env[name]!) : undefined);
  const n = (name: keyof typeof schema.properties) => intOf(schema, env, name);
  return {
    port: mode === 'production' ? undefined : listenPort(env, 'MQTT_PORT', 1883),
    tlsPort: listenPort(env, 'MQTTS_PORT', 8883),
    host: str(env, 'MQTT_HOST', host),
    url,
    shareGroup,
    pkiDir,
    tlsCertFile: file('MQTTS_CERT_FILE') ?? resolve(pkiDir, 'server.crt'),
    tlsKeyFile: file('MQTTS_KEY_FILE') ?? resolve(pkiDir, 'server.key'),
    caFile: file('TERMINAL_CA_FILE') ?? resolve(pkiDir, 'ca.crt'),
    clientCertFile: file('MQTT_CLIENT_CERT_FILE'),
    clientKeyFile: file('MQTT_CLIENT_KEY_FILE'),
    brokerCaFile: file('MQTT_CA_FILE'),
    maxPayloadBytes: n('MQTT_MAX_PAYLOAD_BYTES'),
    outboxPollMs: n('TERMINAL_OUTBOX_POLL_MS'),
    outboxBatchSize: n('TERMINAL_OUTBOX_BATCH_SIZE'),
    requestRetentionHours: n('TERMINAL_REQUEST_RETENTION_HOURS'),
  };
}
