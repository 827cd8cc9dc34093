import net from 'node:net';
import tls from 'node:tls';
import { Aedes, type Client } from 'aedes';
import type { Logger } from 'pino';
import type { Db } from '../../../platform/db.ts';
import type { Clock } from '../../../platform/clock.ts';
import { verifyClientCertificate, verifyMqttSecret, type AuthResult } from '../credentials.ts';
import { describePeerCertificate } from '../certs.ts';
import { isTerminalId, mayPublish, maySubscribe, mayReceive, terminalOfStatusTopic } from '../topics.ts';
import { parseStatus } from '../presence.ts';
import type { Violation } from '../terminals.repo.ts';
import { guardFrames } from './frameGuard.ts';
import type { RequestSink, Transport } from './transport.ts';

// The embedded broker: Aedes speaks MQTT 3.1.1; this file decides who may connect and what each
// terminal may publish, subscribe to and receive. Two listeners:
//   - TLS with a client certificate required (mutual TLS): the certificate names the terminal;
//   - plain TCP (development only): username = terminal id, password = its MQTT secret.
// Either way the MQTT client id must be the terminal id, so one terminal can never take over
// another's session (and with it, its queued events).

type Ok = Extract<AuthResult, { ok: true }>;

interface Session {
  terminalId: string;
  /** Read from the terminal's record at connect; a terminal never moves to another merchant. */
  merchantId: string;
  remoteAddr: string | null;
  credential: Ok['credential'];
  inFlight: { count: number };
  strikes: number;
  /** This connection's start (ms, strictly increasing per broker): orders its online and offline. */
  sinceMs: number;
}

export interface EmbeddedBrokerOptions {
  db: Db;
  clock: Clock;
  logger: Logger;
  host: string;
  /** Plain listener port (development only); undefined = no plain listener. */
  port?: number;
  /** Mutual-TLS listener; undefined = none. */
  tls?: { port: number; key: Buffer; cert: Buffer; ca: Buffer };
  /** Frames announcing more than this are cut off at the header. */
  maxFrameBytes: number;
  onRequest: RequestSink;
  record(v: Violation): void;
  /**
   * Presence from the broker itself: a connection accepted (online) or gone (offline, whatever the
   * cause: DISCONNECT, a dead socket, keepalive expiry, a session closed by the gateway), and a
   * terminal's own status message (heard from).
   */
  onPresence?(terminalId: string, online: boolean, sinceMs: number): void;
  onStatusMessage?(terminalId: string): void;
  /** Violations on one connection before it is closed as abusive. */
  maxStrikes?: number;
}

export interface EmbeddedBroker extends Transport {
  /** Closes live sessions whose credential was revoked. Returns how many. */
  dropRevoked(fingerprints: Set<string>, secretIds: Set<number>): number;
  /** The terminals with a live session on this broker. */
  liveTerminals(): string[];
  /** Closes the live sessions of these terminals (disabled since they connected). Returns how many. */
  dropTerminals(terminalIds: Set<string>): number;
  ports(): { plain?: number; tls?: number };
}

const authError = (code: number, message: string) =>
  Object.assign(new Error(message), { returnCode: code }) as Error & { returnCode: never };
const RC_IDENTIFIER_REJECTED = 2;
const RC_SERVER_UNAVAILABLE = 3;
const RC_BAD_CREDENTIALS = 4;
const RC_NOT_AUTHORIZED = 5;

function listen(server: net.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.removeListener('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

export async function startEmbeddedBroker(o: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const { db, clock, logger } = o;
  const sessions = new WeakMap<Client, Session>();
  const live = new Map<string, Client>();
  const maxStrikes = o.maxStrikes ?? 10;
  const remote = (c: Client) => (c.conn as net.Socket).remoteAddress ?? null;
  let lastSince = 0;
  const nextSince = () => (lastSince = Math.max(Date.now(), lastSince + 1));

  const broker = await Aedes.createBroker({
    connectTimeout: 10_000,
    drainTimeout: 30_000,
    // Terminal ids are 36 characters; MQTT 3.1 capped client ids at 23.
    maxClientsIdLength: 64,
    maxTopicLevels: 8,
    heartbeatInterval: 60_000,

    authenticate(client, username, password, done) {
      const conn = client.conn as net.Socket;
      const isTls = conn instanceof tls.TLSSocket;
      const clientId = client.id;
      const refuse = (code: number, kind: Violation['kind'], reason: string, terminalId?: string) => {
        o.record({
          kind,
          terminalId: terminalId ?? null,
          clientId,
          detail: `${isTls ? 'mqtts' : 'mqtt'}: ${reason}`,
          remoteAddr: conn.remoteAddress,
        });
        done(authError(code, reason), false);
      };
      if (!isTerminalId(clientId))
        return refuse(RC_IDENTIFIER_REJECTED, 'client_id_mismatch', 'client id is not a terminal id');
      let check: Promise<AuthResult>;
      if (isTls) {
        const peer = (conn as tls.TLSSocket).getPeerCertificate();
        if (!peer?.raw) return refuse(RC_NOT_AUTHORIZED, 'auth_failed', 'no client certificate');
        check = verifyClientCertificate(db, describePeerCertificate(peer.raw), clock.now());
      } else {
        check = verifyMqttSecret(db, username, password as Buffer | undefined);
      }
      check.then(
        (r) => {
          if (!r.ok)
            return refuse(
              isTls ? RC_NOT_AUTHORIZED : RC_BAD_CREDENTIALS,
              'auth_failed',
              r.reason,
              isTerminalId(username) ? username : undefined,
            );
          if (r.terminalId !== clientId)
            return refuse(
              RC_IDENTIFIER_REJECTED,
              'client_id_mismatch',
              'client id is not the authenticated terminal',
              r.terminalId,
            );
          sessions.set(client, {
            terminalId: r.terminalId,
            merchantId: r.merchantId,
            remoteAddr: conn.remoteAddress ?? null,
            credential: r.credential,
            inFlight: { count: 0 },
            strikes: 0,
            sinceMs: nextSince(),
          });
          done(null, true);
        },
        (e: Error & { code?: string }) => {
          logger.error({ err: { type: e.name, code: e.code } }, 'terminal authentication failed: database error');
          done(authError(RC_SERVER_UNAVAILABLE, 'server unavailable'), false);
        },
      );
    },

    authorizePublish(client, packet, callback) {
      const s = client ? sessions.get(client) : undefined;
      if (!client || !s) return callback(new Error('not authenticated'));
      if (!mayPublish(s.terminalId, packet.topic)) {
        o.record({
          kind: 'acl_publish',
          terminalId: s.terminalId,
          clientId: client.id,
          detail: packet.topic.slice(0, 200),
          remoteAddr: remote(client),
        });
        // MQTT 3.1.1 has no negative PUBACK: a refused publish closes the connection (MQTT-3.3.5-2).
        return callback(new Error('publish not allowed on this topic'));
      }
      if (terminalOfStatusTopic(packet.topic)) {
        // The terminal's own status (and its will, which Aedes authorizes here when it publishes
        // it). Kept retained on the broker like on an external one; presence itself comes from the
        // connection's events (clientReady / clientDisconnect), which need no terminal clock.
        const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
        if (!parseStatus(payload)) {
          o.record({
            kind: 'malformed',
            terminalId: s.terminalId,
            clientId: client.id,
            detail: 'status message is not {"v":1,"status":"online"|"offline","since":<ms>}',
            remoteAddr: remote(client),
          });
          return callback(new Error('malformed status message'));
        }
        callback(null);
        o.onStatusMessage?.(s.terminalId);
        return;
      }
      // Requests are never retained: nothing lingers on a request topic for a later subscriber.
      packet.retain = false;
      callback(null);
      o.onRequest(s.terminalId, Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload), {
        merchantId: s.merchantId,
        remoteAddr: s.remoteAddr,
        inFlight: s.inFlight,
        strike: () => {
          if (++s.strikes < maxStrikes) return;
          o.record({
            kind: 'malformed',
            terminalId: s.terminalId,
            clientId: client.id,
            detail: `disconnected after ${s.strikes} protocol violations`,
            remoteAddr: remote(client),
          });
          client.close();
        },
      });
    },

    authorizeSubscribe(client, sub, callback) {
      const s = sessions.get(client);
      if (!s || !maySubscribe(s.terminalId, sub.topic)) {
        o.record({
          kind: 'acl_subscribe',
          terminalId: s?.terminalId ?? null,
          clientId: client.id,
          detail: sub.topic.slice(0, 200),
          remoteAddr: remote(client),
        });
        return callback(null, null); // SUBACK 0x80 for this filter; the connection stays
      }
      callback(null, { ...sub, qos: Math.min(sub.qos, 1) as 0 | 1 });
    },

    authorizeForward(client, packet) {
      const s = sessions.get(client);
      return s && mayReceive(s.terminalId, packet.topic) ? packet : null;
    },
  });

  broker.on('clientReady', (client) => {
    const s = sessions.get(client);
    if (!s) return;
    live.set(s.terminalId, client);
    o.onPresence?.(s.terminalId, true, s.sinceMs);
  });
  broker.on('clientDisconnect', (client) => {
    const s = sessions.get(client);
    if (!s) return;
    if (live.get(s.terminalId) === client) live.delete(s.terminalId);
    // Always this connection's own offline: if a newer connection of the terminal is up, its
    // later `since` wins in the presence writer, whatever order the two arrive in.
    o.onPresence?.(s.terminalId, false, s.sinceMs);
  });
  // Client and connection errors are the client's problem (reset sockets, bad packets): log, never throw.
  broker.on('clientError', (client, err) =>
    logger.debug({ client_id: client?.id, err: err.message }, 'mqtt client error'),
  );
  broker.on('connectionError', (_client, err) => logger.debug({ err: err.message }, 'mqtt connection error'));

  const onConnection = (socket: net.Socket) => {
    // Responses are small and must leave at once: Nagle's algorithm with the peer's delayed ACK
    // adds ~40 ms to every round trip otherwise.
    socket.setNoDelay(true);
    const client = broker.handle(socket);
    guardFrames(socket, o.maxFrameBytes, (announced) => {
      const s = sessions.get(client);
      o.record({
        kind: 'frame_too_large',
        terminalId: s?.terminalId ?? null,
        clientId: client.id ?? null,
        detail: announced < 0 ? 'malformed length' : `${announced} bytes announced`,
        remoteAddr: socket.remoteAddress,
      });
    });
  };

  const servers: net.Server[] = [];
  const ports: { plain?: number; tls?: number } = {};
  try {
    if (o.port !== undefined) {
      const plain = net.createServer(onConnection);
      servers.push(plain);
      ports.plain = await listen(plain, o.port, o.host);
    }
    if (o.tls) {
      const secure = tls.createServer(
        {
          key: o.tls.key,
          cert: o.tls.cert,
          ca: o.tls.ca,
          requestCert: true,
          rejectUnauthorized: true,
          minVersion: 'TLSv1.2',
          handshakeTimeout: 10_000,
        },
        onConnection,
      );
      secure.on('tlsClientError', (err: Error & { code?: string }, socket) => {
        o.record({
          kind: 'auth_failed',
          detail: `mqtts: TLS handshake refused (${err.code ?? err.message.slice(0, 80)})`,
          remoteAddr: socket.remoteAddress,
        });
      });
      servers.push(secure);
      ports.tls = await listen(secure, o.tls.port, o.host);
    }
  } catch (e) {
    for (const s of servers) s.close();
    await new Promise<void>((r) => broker.close(() => r()));
    throw e;
  }
  const hostForUrl = o.host.includes(':') ? `[${o.host}]` : o.host === '0.0.0.0' ? '127.0.0.1' : o.host;

  return {
    publish(topic, payload) {
      return new Promise((resolve, reject) =>
        broker.publish(
          { cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain: false, dup: false },
          (err) => (err ? reject(err) : resolve()),
        ),
      );
    },
    urls() {
      const out: string[] = [];
      if (ports.tls !== undefined) out.push(`mqtts://${hostForUrl}:${ports.tls}`);
      if (ports.plain !== undefined) out.push(`mqtt://${hostForUrl}:${ports.plain}`);
      return out;
    },
    ports: () => ({ ...ports }),
    connectedCount: () => broker.connectedClients,
    connected: () => true,
    dropRevoked(fingerprints, secretIds) {
      let n = 0;
      for (const [terminalId, client] of live) {
        const s = sessions.get(client);
        if (!s) continue;
        const c = s.credential;
        if (
          (c.kind === 'certificate' && fingerprints.has(c.fingerprint)) ||
          (c.kind === 'secret' && secretIds.has(c.id))
        ) {
          o.record({
            kind: 'credential_revoked',
            terminalId,
            clientId: client.id,
            detail: `live session closed: ${c.kind} revoked`,
            remoteAddr: remote(client),
          });
          live.delete(terminalId);
          client.close();
          n++;
        }
      }
      return n;
    },
    liveTerminals: () => [...live.keys()],
    dropTerminals(terminalIds) {
      let n = 0;
      for (const terminalId of terminalIds) {
        const client = live.get(terminalId);
        if (!client) continue;
        o.record({
          kind: 'terminal_disabled',
          terminalId,
          clientId: client.id,
          detail: 'live session closed: terminal disabled',
          remoteAddr: remote(client),
        });
        live.delete(terminalId);
        client.close();
        n++;
      }
      return n;
    },
    async close() {
      const closed = servers.map((s) => new Promise<void>((r) => s.close(() => r())));
      await new Promise<void>((r) => broker.close(() => r()));
      await Promise.all(closed);
    },
  };
}
