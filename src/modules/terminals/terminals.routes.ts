import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Db } from '../../platform/db.ts';
import type { Config } from '../../platform/config.ts';
import { AppError } from '../../platform/errors.ts';
import { canAccessMerchant, merchantScope } from '../../platform/principal.ts';
import { getTerminalContext } from '../merchants/index.ts';
import type { AuditWriter } from '../audit/index.ts';
import { issueMqttSecret, revokeCredentialsIn } from './credentials.ts';
import { listCertificates, listViolations } from './terminals.repo.ts';
import { isTerminalId } from './topics.ts';
import { presenceCounts } from './presence.repo.ts';

// HTTP for terminal credentials. Development only: a terminal's MQTT secret for the plain
// listener (the terminal simulator provisions its terminals this way). Production terminals get
// client certificates from `tillpoint terminals enroll`, where the CA key lives.

const IdParam = Type.Object({ id: Type.String({ maxLength: 100 }) });
const MqttCredentials = Type.Object({
  terminal_id: Type.String(),
  mqtt_username: Type.String(),
  mqtt_password: Type.String({ description: 'Shown once; issuing again revokes the previous one' }),
  mqtt_url: Type.Union([Type.String(), Type.Null()], {
    description: 'The plain development listener, when this process runs one',
  }),
});

const PresenceQuery = Type.Object(
  { merchant_id: Type.Optional(Type.String({ maxLength: 100 })) },
  { additionalProperties: false },
);
const PresenceSummary = Type.Object({
  online: Type.Integer({ description: 'Active terminals connected now' }),
  offline: Type.Integer({ description: 'Active terminals heard from before, not connected now' }),
  never_seen: Type.Integer({ description: 'Active terminals that never connected' }),
  total: Type.Integer({ description: 'Active terminals' }),
});

const RevokeBody = Type.Object(
  {
    serial: Type.Optional(
      Type.String({
        pattern: '^[0-9a-fA-F]{1,64}$',
        description: 'One certificate; without it, every live one and the MQTT secret',
      }),
    ),
    reason: Type.Union(
      [
        Type.Literal('key_compromise'),
        Type.Literal('lost_or_stolen'),
        Type.Literal('decommissioned'),
        Type.Literal('superseded'),
        Type.Literal('unspecified'),
      ],
      { description: 'Recorded with the revocation and in the audit trail' },
    ),
  },
  { additionalProperties: false },
);
const Revoked = Type.Object({
  terminal_id: Type.String(),
  revoked_certificates: Type.Array(Type.String(), { description: 'Serials revoked now' }),
  revoked_secrets: Type.Integer(),
  crl_required: Type.Boolean({
    description:
      'An external broker checks certificates against the CRL: publish it where the CA key is (`tillpoint pki crl`) and reload the broker',
  }),
});

/** How long a presence count is reused (the Overview refreshes every 10 s). */
const COUNTS_TTL_MS = 5000;

export function registerTerminalRoutes(
  app: FastifyInstance,
  deps: { db: Db; config: Pick<Config, 'mode' | 'mqtt'>; audit?: Pick<AuditWriter, 'record'> },
) {
  // Revocation needs no CA key: what is revoked is the record every connect is checked against
  // (credentials.ts), so the api role can do it. The embedded broker refuses the credential at the
  // next connect and closes live sessions on it within seconds (the gateway's sweep); an external
  // broker checks the CA's CRL, which is signed with the CA key and so is published where that
  // key lives (`tillpoint pki crl`), not here. Enrolment stays a CLI command (console/README.md).
  app.post<{ Params: Static<typeof IdParam>; Body: Static<typeof RevokeBody> }>(
    '/v1/terminals/:id/revoke',
    {
      config: { permission: 'terminals:revoke' },
      schema: {
        tags: ['terminals'],
        summary: "Revoke a terminal's client certificates (or one, by serial) and its MQTT secret",
        params: IdParam,
        body: RevokeBody,
        response: { 200: Revoked },
      },
    },
    async (req) => {
      const id = req.params.id;
      const ctx = isTerminalId(id) ? await getTerminalContext(deps.db, id) : undefined;
      if (!ctx || !canAccessMerchant(req.principal!, ctx.merchant_id))
        throw new AppError('terminal_not_found', 'Terminal not found');
      const { serial, reason } = req.body;
      const r = await deps.db.tx(async (tx) => {
        const out = await revokeCredentialsIn(tx, id, { serial, reason });
        await deps.audit?.record(tx, {
          action: 'terminal.credentials_revoked',
          resource: { type: 'terminal', id, merchant_id: ctx.merchant_id },
          details: { reason, serials: out.certificates, secrets: out.secrets, serial_requested: serial?.toLowerCase() },
        });
        return out;
      });
      return {
        terminal_id: id,
        revoked_certificates: r.certificates,
        revoked_secrets: r.secrets,
        crl_required: Boolean(deps.config.mqtt.url) && r.certificates.length > 0,
      };
    },
  );

  const countsCache = new Map<string, { at: number; value: Promise<Awaited<ReturnType<typeof presenceCounts>>> }>();
  // The Overview's "terminals online": counts over the presence the gateway records (presence.ts),
  // in the caller's merchant scope. Disabled terminals are not counted: they cannot connect.
  app.get<{ Querystring: Static<typeof PresenceQuery> }>(
    '/v1/terminals/presence',
    {
      config: { permission: 'terminals:read' },
      schema: {
        tags: ['terminals'],
        summary: 'How many active terminals are connected now, offline, and never seen',
        querystring: PresenceQuery,
        response: { 200: PresenceSummary },
      },
    },
    async (req) => {
      const scope = merchantScope(req.principal!, req.query.merchant_id) ?? null;
      // The counts read every active terminal (1.4 s for 450,000 on a loaded 2-core machine,
      // README "Presence"); every open Overview asks every 10 s. One query per scope per
      // COUNTS_TTL_MS per process, shared by the requests that arrive meanwhile.
      const key = scope ?? '*';
      const hit = countsCache.get(key);
      if (hit && performance.now() - hit.at < COUNTS_TTL_MS) return hit.value;
      const value = presenceCounts(deps.db, scope);
      countsCache.set(key, { at: performance.now(), value });
      value.catch(() => countsCache.delete(key));
      if (countsCache.size > 10_000) countsCache.delete(countsCache.keys().next().value!);
      return value;
    },
  );

  app.post<{ Params: Static<typeof IdParam> }>(
    '/v1/terminals/:id/mqtt-credentials',
    {
      config: { permission: 'terminals:write' },
      schema: {
        tags: ['terminals'],
        summary: "Issue (or rotate) a terminal's MQTT secret for the development listener (refused in production)",
        params: IdParam,
        response: { 201: MqttCredentials },
      },
    },
    async (req, reply) => {
      const id = req.params.id;
      const ctx = isTerminalId(id) ? await getTerminalContext(deps.db, id) : undefined;
      if (!ctx || !canAccessMerchant(req.principal!, ctx.merchant_id))
        throw new AppError('terminal_not_found', 'Terminal not found');
      const c = await issueMqttSecret(deps.db, id, deps.config.mode);
      const mq = deps.config.mqtt;
      const url = mq.url ?? (mq.port ? `mqtt://${mq.host === '0.0.0.0' ? '127.0.0.1' : mq.host}:${mq.port}` : null);
      return reply
        .status(201)
        .send({ terminal_id: id, mqtt_username: c.username, mqtt_password: c.password, mqtt_url: url });
    },
  );

  // A terminal's credentials and refused access, for the console's terminal page: certificates
  // (serials and validity only; fingerprints and keys stay out) and its latest protocol violations.
  const Security = Type.Object({
    certificates: Type.Array(
      Type.Object({
        serial: Type.String(),
        not_before: Type.String(),
        not_after: Type.String(),
        revoked_at: Type.Union([Type.String(), Type.Null()]),
        revoke_reason: Type.Union([Type.String(), Type.Null()]),
      }),
    ),
    violations: Type.Array(
      Type.Object({ kind: Type.String(), detail: Type.Union([Type.String(), Type.Null()]), at: Type.String() }),
    ),
  });
  app.get<{ Params: Static<typeof IdParam> }>(
    '/v1/terminals/:id/security',
    {
      config: { permission: 'terminals:read' },
      schema: {
        tags: ['terminals'],
        summary: "A terminal's certificates and its latest refused connects, publishes and malformed messages",
        params: IdParam,
        response: { 200: Security },
      },
    },
    async (req) => {
      const id = req.params.id;
      const ctx = isTerminalId(id) ? await getTerminalContext(deps.db, id) : undefined;
      if (!ctx || !canAccessMerchant(req.principal!, ctx.merchant_id))
        throw new AppError('terminal_not_found', 'Terminal not found');
      const [certs, violations] = await Promise.all([
        listCertificates(deps.db, id),
        listViolations(deps.db, { terminalId: id, limit: 20 }),
      ]);
      const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);
      return {
        certificates: certs.map((c) => ({
          serial: c.serial,
          not_before: iso(c.not_before)!,
          not_after: iso(c.not_after)!,
          revoked_at: iso(c.revoked_at),
          revoke_reason: c.revoke_reason,
        })),
        violations: violations.map((v) => ({ kind: v.kind, detail: v.detail, at: iso(v.at)! })),
      };
    },
  );
}
