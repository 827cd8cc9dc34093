import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient, type IClientOptions } from 'mqtt';
import { topics, type protocol } from '../../modules/terminals/index.ts';

// A tool, not domain: the terminal side of the protocol, for tests, benchmarks, the fleet
// simulator and anyone writing a terminal. It uses the terminals module through its public face.
type RequestType = protocol.RequestType;
type RequestBody<T extends RequestType> = protocol.RequestBody<T>;
type ResponseBody<T extends RequestType> = protocol.ResponseBody<T>;
type PaymentUpdated = protocol.PaymentUpdated;
type PaymentMessage = protocol.PaymentMessage;
type RefundMessage = protocol.RefundMessage;
const { requestTopic, responseTopic, eventTopic, statusTopic } = topics;

// The terminal SDK: what an application on a POS terminal uses to talk to Tillpoint over MQTT.
// It depends on mqtt.js only (the protocol types are type-only imports), so it can be lifted
// into a terminal's code base as it is.
//
//   const t = await connectTerminal({ url: 'mqtts://gw:8883', terminalId, cert, key, ca });
//   t.on('payment.updated', (e) => show(e.body.status));
//   const p = await t.createPayment({ method: 'upi_qr', amount: 14900, currency: 'INR' });
//
// Requests are QoS 1 with a client message id. When no response arrives in time the SDK sends
// the same message again with the same id: the gateway answers a redelivered id with the
// original response and never acts twice. Sessions are persistent (clean = false), so events
// published while the terminal was offline arrive when it reconnects.
//
// Presence: every connection carries an MQTT will, a retained "offline" on the terminal's own
// status topic, which the broker publishes if the connection dies without a DISCONNECT; once
// connected the SDK publishes a retained "online" there. Both name the connection's start
// (`since`), so the gateway can tell an old connection's late will from the current state. A
// close() publishes "offline" itself, since a clean DISCONNECT discards the will.

export interface TerminalClientOptions {
  /** mqtts://host:8883 (mutual TLS) or, in development, mqtt://host:1883. */
  url: string;
  terminalId: string;
  /** Client certificate and key (PEM) from `tillpoint terminals enroll`, and the CA to trust. */
  cert?: string | Buffer;
  key?: string | Buffer;
  ca?: string | Buffer;
  /** Development listener: the terminal's MQTT secret (username = terminal id). */
  password?: string;
  /** Time to wait for a response before sending the request again. Default 5000 ms. */
  requestTimeoutMs?: number;
  /** Extra attempts after the first when no response arrives. Default 2. */
  retries?: number;
  /** The gateway's request size limit (MQTT_MAX_PAYLOAD_BYTES). Default 16384. */
  maxPayloadBytes?: number;
  keepaliveSeconds?: number;
  connectTimeoutMs?: number;
  /** Wait between reconnect attempts; 0 turns automatic reconnection off. Default 1000 ms. */
  reconnectPeriodMs?: number;
  /** false (default): a persistent session, events queued while offline are delivered on reconnect. */
  clean?: boolean;
  /** TLS server name to verify, when the URL's host is not in the server certificate. */
  servername?: string;
  /** Publish presence (a will and a retained "online"). Default true. */
  presence?: boolean;
}

/** The status message (docs/terminal-protocol.md, "Presence"). */
const statusMessage = (online: boolean, since: number) =>
  JSON.stringify({ v: 1, status: online ? 'online' : 'offline', since });
/** The connection's will: a retained "offline" the broker publishes if the connection dies. */
const willFor = (terminalId: string, since: number) => ({
  topic: statusTopic(terminalId),
  payload: Buffer.from(statusMessage(false, since)),
  qos: 1 as const,
  retain: true,
});

/** The gateway answered with an error. `code` is one of the stable codes in docs/terminal-protocol.md. */
export class TerminalRequestError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly requestId: string | null,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'TerminalRequestError';
  }
}

/** No response after every attempt. The request may or may not have been carried out: send it again with the same id to find out. */
export class TerminalTimeoutError extends Error {
  constructor(
    readonly requestId: string,
    readonly attempts: number,
  ) {
    super(`no response to request ${requestId} after ${attempts} attempt(s)`);
    this.name = 'TerminalTimeoutError';
  }
}

export interface RequestOptions {
  /** Reuse an id to ask again about a request that timed out earlier. */
  id?: string;
  timeoutMs?: number;
  retries?: number;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer?: NodeJS.Timeout;
}

export interface TerminalClientEvents {
  'payment.updated': [PaymentUpdated];
  /** The broker had no session for us on reconnect: events may have been missed; re-read with listRecentPayments. */
  session_lost: [];
  connect: [{ sessionPresent: boolean }];
  /** The connection dropped (the SDK reconnects unless reconnectPeriodMs is 0). */
  offline: [];
  /** A message the SDK could not use (an error response without an id, an unknown event). */
  protocol_error: [unknown];
}

/** Error codes worth sending again by themselves (the gateway did nothing). */
const RETRY_ON_CODES = new Set(['rate_limited']);
const MAX_TRACKED_PAYMENTS = 2000;

export class TerminalClient extends EventEmitter<TerminalClientEvents> {
  readonly terminalId: string;
  private readonly mqtt: MqttClient;
  private readonly pending = new Map<string, Pending>();
  private readonly lastSeq = new Map<string, number>();
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly maxPayloadBytes: number;
  private everConnected = false;
  private closed = false;
  /** The current connection's start (ms); strictly increasing, so each connection's statuses order after the last's. */
  private since = 0;
  private readonly presence: boolean;
  /** Events that arrived before anyone listened (queued events come right after CONNACK). */
  private early: PaymentUpdated[] | undefined = [];

  /** Use connectTerminal(). */
  constructor(client: MqttClient, opts: TerminalClientOptions) {
    super();
    this.mqtt = client;
    this.terminalId = opts.terminalId;
    this.timeoutMs = opts.requestTimeoutMs ?? 5000;
    this.retries = opts.retries ?? 2;
    this.maxPayloadBytes = opts.maxPayloadBytes ?? 16 * 1024;
    this.presence = opts.presence ?? true;
    if (this.presence) {
      // connectTerminal put the first connection's will in the options (mqtt.js sends the CONNECT
      // at once); its `since` is this connection's.
      const first = client.options.will?.payload;
      this.since = first ? (JSON.parse(first.toString()) as { since: number }).since : 0;
      if (!first) this.nextConnection();
      // mqtt.js builds each CONNECT from client.options: a fresh will for every reconnection.
      client.on('reconnect', () => this.nextConnection());
    }
    const res = responseTopic(this.terminalId);
    const evt = eventTopic(this.terminalId);
    client.on('message', (topic, payload) => {
      if (topic === res) this.onResponse(payload);
      else if (topic === evt) this.onEvent(payload);
    });
    (this as EventEmitter).on('newListener', (name: string | symbol) => {
      if (name !== 'payment.updated' || !this.early) return;
      const queued = this.early;
      this.early = undefined;
      // After the listener is attached (newListener fires before).
      queueMicrotask(() => queued.forEach((e) => this.emit('payment.updated', e)));
    });
    client.on('connect', (connack) => {
      // Small request messages must leave at once (no Nagle delay waiting for the previous ACK).
      (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true);
      const sessionPresent = Boolean(connack.sessionPresent);
      if (this.everConnected && !sessionPresent && !opts.clean) this.emit('session_lost');
      this.everConnected = true;
      if (this.presence)
        client.publish(statusTopic(this.terminalId), statusMessage(true, this.since), { qos: 1, retain: true }, () => {
          // Lost with the connection: the will reports it instead.
        });
      this.emit('connect', { sessionPresent });
    });
    // 'close' fires on every lost connection, with or without automatic reconnection.
    client.on('close', () => this.emit('offline'));
    // mqtt.js reports connection problems as 'error' and keeps reconnecting; the application
    // learns of them through 'offline' and request timeouts rather than a crash.
    client.on('error', () => {});
  }

  get connected(): boolean {
    return this.mqtt.connected;
  }

  private nextConnection() {
    this.since = Math.max(Date.now(), this.since + 1);
    this.mqtt.options.will = willFor(this.terminalId, this.since);
  }

  /** Sends one request and resolves with the response body, or rejects with TerminalRequestError / TerminalTimeoutError. */
  request<T extends RequestType>(type: T, body: RequestBody<T>, opts: RequestOptions = {}): Promise<ResponseBody<T>> {
    if (this.closed) return Promise.reject(new Error('the terminal client is closed'));
    const id = opts.id ?? `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
    const message = JSON.stringify({ v: 1, id, type, body });
    if (Buffer.byteLength(message) > this.maxPayloadBytes) {
      return Promise.reject(
        new TerminalRequestError('payload_too_large', `the request is larger than ${this.maxPayloadBytes} bytes`, id),
      );
    }
    if (this.pending.has(id)) return Promise.reject(new Error(`request ${id} is already waiting for its response`));
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const attempts = 1 + (opts.retries ?? this.retries);
    return new Promise<ResponseBody<T>>((resolve, reject) => {
      let attempt = 0;
      const entry: Pending = { resolve: resolve as (v: unknown) => void, reject };
      const send = () => {
        attempt++;
        this.mqtt.publish(requestTopic(this.terminalId), message, { qos: 1 }, () => {
          // Publish errors (offline, closed) surface as a timeout: the message stays queued
          // in mqtt.js and goes out on reconnect.
        });
        entry.timer = setTimeout(() => {
          if (attempt < attempts) return send();
          this.pending.delete(id);
          reject(new TerminalTimeoutError(id, attempt));
        }, timeoutMs);
      };
      entry.resolve = (v) => {
        clearTimeout(entry.timer);
        this.pending.delete(id);
        resolve(v as ResponseBody<T>);
      };
      entry.reject = (e) => {
        clearTimeout(entry.timer);
        if (e instanceof TerminalRequestError && RETRY_ON_CODES.has(e.code) && attempt < attempts) {
          entry.timer = setTimeout(send, Math.min(1000, 50 * 2 ** attempt) + Math.random() * 50);
          return;
        }
        this.pending.delete(id);
        reject(e);
      };
      this.pending.set(id, entry);
      send();
    });
  }

  ping() {
    return this.request('ping', {});
  }

  createPayment(body: RequestBody<'payment.create'>, opts?: RequestOptions): Promise<PaymentMessage> {
    return this.request('payment.create', body, opts);
  }

  getPayment(paymentId: string, opts?: RequestOptions): Promise<PaymentMessage> {
    return this.request('payment.get', { payment_id: paymentId }, opts);
  }

  refundPayment(paymentId: string, amount: number, reason?: string, opts?: RequestOptions): Promise<RefundMessage> {
    return this.request(
      'payment.refund',
      { payment_id: paymentId, amount, ...(reason === undefined ? {} : { reason }) },
      opts,
    );
  }

  async listRecentPayments(
    body: RequestBody<'payment.list_recent'> = {},
    opts?: RequestOptions,
  ): Promise<PaymentMessage[]> {
    return (await this.request('payment.list_recent', body, opts)).data;
  }

  /** Disconnects; requests still waiting are rejected. The session (and queued events) stay on the broker. */
  async close(): Promise<void> {
    this.closed = true;
    for (const [, p] of this.pending) p.reject(new Error('the terminal client was closed'));
    this.pending.clear();
    if (this.presence && this.mqtt.connected) {
      // A clean DISCONNECT discards the will: say "offline" ourselves, and wait for the PUBACK.
      await this.mqtt
        .publishAsync(statusTopic(this.terminalId), statusMessage(false, this.since), { qos: 1, retain: true })
        .catch(() => {});
    }
    await this.mqtt.endAsync();
  }

  private onResponse(payload: Buffer) {
    let msg: {
      id?: unknown;
      ok?: unknown;
      body?: unknown;
      error?: { code?: string; message?: string; details?: unknown };
    };
    try {
      msg = JSON.parse(payload.toString('utf8'));
    } catch {
      return this.emit('protocol_error', payload.toString('utf8').slice(0, 200));
    }
    const p = typeof msg.id === 'string' ? this.pending.get(msg.id) : undefined;
    if (!p) {
      // A duplicate of a response already handled, or an error without an id.
      if (msg.id === null) this.emit('protocol_error', msg);
      return;
    }
    if (msg.ok === true) p.resolve(msg.body);
    else
      p.reject(
        new TerminalRequestError(
          msg.error?.code ?? 'unknown',
          msg.error?.message ?? 'request failed',
          msg.id as string,
          msg.error?.details,
        ),
      );
  }

  private onEvent(payload: Buffer) {
    let e: PaymentUpdated;
    try {
      e = JSON.parse(payload.toString('utf8'));
    } catch {
      return this.emit('protocol_error', payload.toString('utf8').slice(0, 200));
    }
    if (e?.type !== 'payment.updated' || typeof e.seq !== 'number' || typeof e.body?.payment_id !== 'string')
      return this.emit('protocol_error', e);
    // At-least-once delivery and replicas relaying in parallel: drop duplicates and anything
    // older than what this payment already showed.
    const last = this.lastSeq.get(e.body.payment_id);
    if (last !== undefined && e.seq <= last) return;
    this.lastSeq.delete(e.body.payment_id);
    this.lastSeq.set(e.body.payment_id, e.seq);
    if (this.lastSeq.size > MAX_TRACKED_PAYMENTS) this.lastSeq.delete(this.lastSeq.keys().next().value!);
    if (this.early) {
      if (this.early.length < MAX_TRACKED_PAYMENTS) this.early.push(e);
      return;
    }
    this.emit('payment.updated', e);
  }
}

/** Connects, subscribes to the terminal's response and event topics (QoS 1), and resolves once ready. */
export async function connectTerminal(opts: TerminalClientOptions): Promise<TerminalClient> {
  const options: IClientOptions = {
    clientId: opts.terminalId,
    clean: opts.clean ?? false,
    protocolVersion: 4,
    keepalive: opts.keepaliveSeconds ?? 60,
    connectTimeout: opts.connectTimeoutMs ?? 10_000,
    reconnectPeriod: opts.reconnectPeriodMs ?? 1000,
    resubscribe: true,
  };
  if (opts.password !== undefined) {
    options.username = opts.terminalId;
    options.password = opts.password;
  }
  if (opts.cert) {
    options.cert = opts.cert;
    options.key = opts.key;
  }
  if (opts.ca) options.ca = opts.ca;
  if (opts.servername) options.servername = opts.servername;
  options.rejectUnauthorized = true;
  if (opts.presence ?? true) options.will = willFor(opts.terminalId, Date.now());

  const client = mqtt.connect(opts.url, options);
  const terminal = new TerminalClient(client, opts);
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error) => {
      cleanup();
      client.end(true);
      reject(e);
    };
    const onClose = () => {
      // Refused at CONNACK, or the TLS handshake failed: mqtt.js would keep retrying.
      if (client.connected) return;
      cleanup();
      client.end(true);
      reject(new Error('the broker closed the connection before accepting it (refused credentials?)'));
    };
    const onConnect = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      client.removeListener('error', onError);
      client.removeListener('close', onClose);
      client.removeListener('connect', onConnect);
    };
    client.once('error', onError);
    client.once('close', onClose);
    client.once('connect', onConnect);
  });
  // With a session present the broker kept our subscriptions; subscribing again is harmless and
  // covers brokers that expired the session's subscriptions but not the session.
  const granted = await client.subscribeAsync([responseTopic(opts.terminalId), eventTopic(opts.terminalId)], {
    qos: 1,
  });
  if (granted.some((g) => g.qos !== 1)) {
    await client.endAsync(true);
    throw new Error('the broker refused the terminal subscriptions');
  }
  return terminal;
}

export type { PaymentUpdated, PaymentMessage, RefundMessage, RequestType, RequestBody, ResponseBody };
