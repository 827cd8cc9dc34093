// What the gateway needs from a broker, embedded or external: receive terminal requests, publish
// responses and events at QoS 1, and (embedded only) drop a terminal's live connection.

export interface RequestContext {
  /** The terminal's merchant, read from its record when it connected (embedded broker only). */
  merchantId?: string;
  /** Where the terminal connects from (embedded broker only), for the audit trail. */
  remoteAddr?: string | null;
  /** Requests this connection has in flight (embedded broker only: it knows the connection). */
  inFlight?: { count: number };
  /** Counts protocol violations on this connection; the gateway disconnects a repeat offender. */
  strike?(): void;
}

export type RequestSink = (terminalId: string, payload: Buffer, ctx: RequestContext) => void;

export interface Transport {
  /** Resolves when the broker has taken the message (QoS 1: queued for, or delivered to, the terminal). */
  publish(topic: string, payload: string): Promise<void>;
  /** Where terminals connect, for the start-up banner. */
  urls(): string[];
  /** Connected terminals (embedded broker); undefined when the broker is external. */
  connectedCount(): number | undefined;
  /** Whether requests can reach this gateway and its answers the terminals (readiness). */
  connected(): boolean;
  /** Stops taking new requests before a stop (external broker: leaves the shared subscription, so the broker sends them to the other replicas). */
  stopConsuming?(): Promise<void>;
  close(): Promise<void>;
}
