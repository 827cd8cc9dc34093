import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { sharedRequestFilter, sharedStatusFilter, terminalOfRequestTopic, terminalOfStatusTopic } from '../topics.ts';
import type { Violation } from '../terminals.repo.ts';
import type { RequestSink, Transport } from './transport.ts';

// External broker mode: the gateway is an MQTT client of Mosquitto, EMQX or AWS IoT Core and
// consumes every terminal's requests through one shared subscription, so N gateway replicas
// split the load and each request reaches exactly one of them. The broker authenticates the
// terminals and enforces the topic ACL (README.md gives the Mosquitto ACL and the AWS IoT
// policy); the gateway trusts the terminal id in a request's topic because of that ACL, and
// still checks per request that the terminal exists and is active.

export interface ExternalBrokerOptions {
  url: string;
  shareGroup: string;
  clientCertFile?: string;
  clientKeyFile?: string;
  caFile?: string;
  logger: Logger;
  onRequest: RequestSink;
  /**
   * A terminal's status message (its retained "online", or its will "offline" that the broker
   * published for it), from the shared subscription on the status topics. The broker's ACL lets a
   * terminal publish only its own, so the terminal id in the topic is the connection's.
   */
  onStatus?(terminalId: string, payload: Buffer): void;
  record(v: Violation): void;
  connectTimeoutMs?: number;
}

export async function connectExternalBroker(o: ExternalBrokerOptions): Promise<Transport> {
  const clientId = `tillpoint-gateway-${hostname()
    .replace(/[^A-Za-z0-9_-]/g, '')
    .slice(0, 20)}-${randomBytes(4).toString('hex')}`;
  const client: MqttClient = mqtt.connect(o.url, {
    clientId,
    // Version 5: a refused publish comes back as a PUBACK reason code instead of silence.
    protocolVersion: 5,
    // The gateway keeps no session: requests that arrive while no replica is connected are
    // retried by the terminal SDK with the same id.
    clean: true,
    reconnectPeriod: 1000,
    connectTimeout: o.connectTimeoutMs ?? 10_000,
    resubscribe: true,
    cert: o.clientCertFile ? readFileSync(o.clientCertFile) : undefined,
    key: o.clientKeyFile ? readFileSync(o.clientKeyFile) : undefined,
    ca: o.caFile ? readFileSync(o.caFile) : undefined,
    rejectUnauthorized: true,
  });
  const filter = sharedRequestFilter(o.shareGroup);
  const filters = o.onStatus ? [filter, sharedStatusFilter(o.shareGroup)] : [filter];

  client.on('message', (topic, payload) => {
    const terminalId = terminalOfRequestTopic(topic);
    if (!terminalId) {
      const statusOf = o.onStatus && terminalOfStatusTopic(topic);
      if (statusOf) return o.onStatus!(statusOf, payload);
      o.record({ kind: 'acl_publish', detail: `external broker delivered ${topic.slice(0, 200)}` });
      return;
    }
    o.onRequest(terminalId, payload, {});
  });
  // Responses and events are small and latency-bound: no Nagle delay on the broker connection.
  client.on('connect', () => (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true));
  client.on('error', (e) => o.logger.warn({ err: { type: e.name, message: e.message } }, 'external MQTT broker error'));
  client.on('offline', () => o.logger.warn('external MQTT broker unreachable; reconnecting'));

  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error) => {
      client.end(true);
      reject(new Error(`cannot connect to MQTT_URL: ${e.message}`));
    };
    client.once('error', onError);
    client.once('connect', () => {
      client.removeListener('error', onError);
      resolve();
    });
  });
  const granted = await client.subscribeAsync(filters, { qos: 1 });
  if ((granted.find((g) => g.topic === filter)?.qos ?? 128) > 1) {
    await client.endAsync(true);
    throw new Error(
      `the broker refused the shared subscription ${filter} (is the gateway allowed to read tillpoint/v1/terminals/+/req?)`,
    );
  }
  if (granted.some((g) => g.topic !== filter && g.qos > 1))
    // Requests still work; presence does not. An ACL from before presence: regenerate it.
    o.logger.warn(
      { filter: filters[1] },
      'the broker refused the status subscription: terminal presence is not recorded (allow the gateway to read tillpoint/v1/terminals/+/status)',
    );
  o.logger.info({ filters }, 'consuming terminal requests and status from the external broker');

  return {
    async publish(topic, payload) {
      await client.publishAsync(topic, payload, { qos: 1 });
    },
    urls: () => [o.url.replace(/\/\/[^@/]*@/, '//')],
    connectedCount: () => undefined,
    connected: () => client.connected,
    async stopConsuming() {
      if (client.connected) await client.unsubscribeAsync(filters);
    },
    async close() {
      await client.endAsync(false);
    },
  };
}
