import type { Static, TObject } from '@sinclair/typebox';
import type { BankConfig } from '../banks.settings.ts';
import type { Clock } from '../../../platform/clock.ts';
import type { HeaderSource, RejectReason } from '../../../platform/signing.ts';
import type { BankTransport } from '../transport.ts';
import type { BankCallback, BankConnector, BankResult, PushCreditRequest } from '../types.ts';

// The connector contract: what one folder under connectors/<name>/ provides, and nothing else.
// A connector knows its bank's wire format (request and answer shapes, response codes, how the
// bank signs and encrypts) and maps it onto Tillpoint's types. It does not open sockets (the
// shared transport does), decide on retries, keep nonces, record refused calls or route payments
// (banks.service does). The contract suite (contract.testkit.ts) holds every connector to this.

/** Why a callback was refused: the signing reasons, plus a body the connector cannot read. */
export type CallbackRejectReason = RejectReason | 'malformed_body';

export type CallbackVerdict =
  | {
      ok: true;
      callback: BankCallback;
      /**
       * Unique per message the bank sent (its nonce, or a hash of its signature): remembered for the
       * freshness window, so a captured callback is accepted once.
       */
      replayKey: string;
      /** When the bank says it sent it (signed). Refused outside ±callbacks.maxAgeSeconds. */
      sentAt: Date;
    }
  | { ok: false; reason: CallbackRejectReason };

export interface Connector extends BankConnector {
  /** Every connector can push a credit to a customer's VPA (types.ts PushCreditRequest). */
  pushCredit(req: PushCreditRequest): Promise<BankResult>;
  checkPushCreditStatus(creditRef: string): Promise<BankResult>;
  /**
   * Checks a callback over the body exactly as received (bytes, before any parsing) and its
   * headers, then reads it. Never throws for anything the caller sent: a forged, malformed or
   * unreadable call is `{ ok: false, reason }`, which the service records and refuses. Freshness
   * (sentAt) and replay (replayKey) are enforced by the service for every connector alike.
   */
  verifyCallback(rawBody: Buffer, headers: HeaderSource): CallbackVerdict;
}

export interface ConnectorContext<S> {
  bank: BankConfig;
  /** BANKS[].settings, validated against the definition's schema. */
  settings: S;
  /** Built lazily on the first call (a client key held as a secret is read then). */
  transport(): BankTransport;
  clock: Clock;
  /** Production mode: sandbox and development-only settings are refused. */
  production: boolean;
  /** Freshness window for callbacks, for connectors whose signature check wants it. */
  callbackMaxAgeSeconds: number;
  /**
   * A secret the settings name (a `*_secret` field holds its name): the value to use now and the
   * previous one while a rotation overlap lasts. Read at each use, so rotations apply at once.
   */
  secret(name: string): { current: string; verifying: string[] };
}

export interface ConnectorDefinition<S extends TObject = TObject> {
  /** What BANKS[].connector names. */
  name: string;
  /** The connector's own settings (BANKS[].settings minus the shared transport settings). */
  settings: S;
  create(ctx: ConnectorContext<Static<S>>): Connector;
}

export function defineConnector<S extends TObject>(d: ConnectorDefinition<S>): ConnectorDefinition<S> {
  return d;
}
