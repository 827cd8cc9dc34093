import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { PageQuery, decodeCursor, pageOf } from '../../http/pagination.ts';
import type { Principal } from '../../platform/principal.ts';
import { SELF_PERMISSION } from '../../platform/principal.ts';
import type { IdentityService } from './operators.service.ts';
import type { ApiKeysService } from './apiKeys.service.ts';
import { ROLE_NAMES } from './roles.ts';
import { AppError } from '../../platform/errors.ts';
import { clearedSessionCookie, sessionCookie } from './authenticator.ts';
import { signInRateLimits, mfaRateLimits } from '../../http/edge/index.ts';
import { ApprovalRequired } from './approvals.routes.ts';

// Sign-in, the operator's own account, operator administration and API key management.
// Thin: schemas in, service call, schema out.

const OperatorId = Type.String({ maxLength: 100 });
const MerchantId = Type.String({ pattern: '^mer_[0-9a-f]{32}$' });
const Role = Type.Union(ROLE_NAMES.map((r) => Type.Literal(r)));
const IdParam = Type.Object({ id: OperatorId });
const ListQuery = Type.Object(PageQuery, { additionalProperties: false });
const ts = Type.String({ format: 'date-time' });
const nts = Type.Union([ts, Type.Null()]);

const Operator = Type.Object({
  id: Type.String(),
  email: Type.String(),
  name: Type.String(),
  merchant_id: Type.Union([Type.String(), Type.Null()]),
  roles: Type.Array(Type.String()),
  status: Type.String(),
  disabled_reason: Type.Union([Type.String(), Type.Null()]),
  locked_until: nts,
  mfa_enrolled: Type.Boolean(),
  must_change_password: Type.Boolean(),
  last_login_at: nts,
  last_used_at: nts,
  created_at: ts,
});
const OperatorWithPassword = Type.Object({
  operator: Operator,
  temporary_password: Type.Optional(Type.String({ description: 'Shown once; must be changed at first sign-in' })),
});

const Login = Type.Object(
  { email: Type.String({ minLength: 3, maxLength: 320 }), password: Type.String({ minLength: 1, maxLength: 1024 }) },
  { additionalProperties: false },
);
const Challenge = Type.Object({
  challenge: Type.String(),
  mfa: Type.Union([Type.Literal('totp'), Type.Literal('enroll')]),
  expires_at: ts,
  otpauth_uri: Type.Optional(Type.String()),
  qr_svg: Type.Optional(Type.String()),
});
const Mfa = Type.Object(
  {
    challenge: Type.String({ minLength: 10, maxLength: 200 }),
    code: Type.String({ minLength: 6, maxLength: 24, description: 'A 6-digit TOTP code, or a recovery code' }),
  },
  { additionalProperties: false },
);
const SessionInfo = Type.Object({
  id: Type.String(),
  expires_at: ts,
  idle_timeout_seconds: Type.Integer(),
  created_at: Type.Optional(ts),
});
const Opened = Type.Object({
  session: SessionInfo,
  csrf_token: Type.String(),
  operator: Operator,
  recovery_codes: Type.Optional(Type.Array(Type.String())),
});
const Current = Type.Object({
  operator: Operator,
  permissions: Type.Array(Type.String()),
  session: SessionInfo,
  csrf_token: Type.String(),
});

const CreateOperator = Type.Object(
  {
    email: Type.String({ minLength: 3, maxLength: 320 }),
    name: Type.String({ minLength: 1, maxLength: 100 }),
    roles: Type.Array(Role, { minItems: 1, maxItems: ROLE_NAMES.length, uniqueItems: true }),
    merchant_id: Type.Optional(Type.Union([MerchantId, Type.Null()])),
  },
  { additionalProperties: false },
);
const UpdateOperator = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    roles: Type.Optional(Type.Array(Role, { minItems: 1, maxItems: ROLE_NAMES.length, uniqueItems: true })),
  },
  { additionalProperties: false, minProperties: 1 },
);
const Reason = Type.Object(
  { reason: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })) },
  { additionalProperties: false },
);

const ApiKey = Type.Object({
  id: Type.String(),
  name: Type.String(),
  prefix: Type.String(),
  merchant_id: Type.Union([Type.String(), Type.Null()]),
  permissions: Type.Array(Type.String()),
  ip_allowlist: Type.Array(Type.String()),
  status: Type.String(),
  expires_at: nts,
  revoked_at: nts,
  last_used_at: nts,
  created_at: ts,
  created_by: Type.Union([Type.String(), Type.Null()]),
  rotated_from: Type.Union([Type.String(), Type.Null()]),
});
const ApiKeyWithSecret = Type.Intersect([
  ApiKey,
  Type.Object({
    key: Type.String({ description: 'Shown once; only its digest is kept' }),
    previous_key_expires_at: Type.Optional(ts),
  }),
]);
const CreateApiKey = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    merchant_id: Type.Optional(Type.Union([MerchantId, Type.Null()])),
    permissions: Type.Array(Type.String({ maxLength: 50 }), { minItems: 1, maxItems: 20, uniqueItems: true }),
    expires_in_days: Type.Optional(Type.Integer({ minimum: 1, maximum: 730 })),
    ip_allowlist: Type.Optional(Type.Array(Type.String({ maxLength: 50 }), { maxItems: 20 })),
  },
  { additionalProperties: false },
);
const Rotate = Type.Object(
  {
    overlap_hours: Type.Optional(Type.Integer({ minimum: 0, maximum: 168 })),
    expires_in_days: Type.Optional(Type.Integer({ minimum: 1, maximum: 730 })),
  },
  { additionalProperties: false },
);
const KeyListQuery = Type.Object(
  { ...PageQuery, merchant_id: Type.Optional(MerchantId) },
  { additionalProperties: false },
);

const p = (req: { principal?: Principal }) => req.principal!;

export function registerIdentityRoutes(
  app: FastifyInstance,
  identity: IdentityService,
  apiKeys: ApiKeysService,
  opts: { sessionAbsoluteHours: number },
) {
  const auth = ['auth'];
  // Stricter limits than the API's, per IP and per account; the per-account burst sits above the
  // lockout threshold so the PCI DSS 8.3.4 lockout (10 failures) always acts first.
  app.post<{ Body: Static<typeof Login> }>(
    '/v1/auth/login',
    {
      config: {
        public: true,
        rateLimits: signInRateLimits((req) => (req.body as { email?: string } | undefined)?.email),
      },
      schema: {
        tags: auth,
        summary:
          'Sign in, step one: email and password. Answers with a second-factor challenge (and, at first sign-in, the TOTP enrollment).',
        body: Login,
        response: { 200: Challenge },
      },
    },
    async (req) => identity.login(req.body),
  );

  app.post<{ Body: Static<typeof Mfa> }>(
    '/v1/auth/mfa',
    {
      config: {
        public: true,
        rateLimits: mfaRateLimits((req) => (req.body as { challenge?: string } | undefined)?.challenge),
      },
      schema: {
        tags: auth,
        summary: 'Sign in, step two: the TOTP code. Opens a session (HttpOnly cookie) and returns its CSRF token.',
        body: Mfa,
        response: { 200: Opened },
      },
    },
    async (req, reply) => {
      const s = await identity.completeMfa(req.body, req.ip);
      reply.header('set-cookie', sessionCookie(s.token, opts.sessionAbsoluteHours * 3600));
      reply.header('cache-control', 'no-store');
      const { token: _token, ...body } = s;
      return body;
    },
  );

  app.get(
    '/v1/auth/session',
    {
      config: { permission: SELF_PERMISSION },
      schema: {
        tags: auth,
        summary: "The signed-in operator, their permissions and the session's CSRF token",
        response: { 200: Current },
      },
    },
    async (req, reply) => {
      reply.header('cache-control', 'no-store');
      return identity.session(p(req));
    },
  );

  app.post(
    '/v1/auth/logout',
    {
      config: { permission: SELF_PERMISSION },
      schema: { tags: auth, summary: 'End this session' },
    },
    async (req, reply) => {
      await identity.logout(p(req));
      reply.header('set-cookie', clearedSessionCookie());
      return reply.status(204).send();
    },
  );

  const ChangePassword = Type.Object(
    {
      current_password: Type.String({ minLength: 1, maxLength: 1024 }),
      new_password: Type.String({ minLength: 1, maxLength: 1024 }),
    },
    { additionalProperties: false },
  );
  app.post<{ Body: Static<typeof ChangePassword> }>(
    '/v1/auth/password',
    {
      config: { permission: SELF_PERMISSION },
      schema: {
        tags: auth,
        summary:
          'Change your password (12+ characters, letters and digits, not common, not one of your last 4). Ends your other sessions.',
        body: ChangePassword,
      },
    },
    async (req, reply) => {
      await identity.changePassword(p(req), req.body);
      return reply.status(204).send();
    },
  );

  const Code = Type.Object({ code: Type.String({ pattern: '^[0-9]{6}$' }) }, { additionalProperties: false });
  app.post<{ Body: Static<typeof Code> }>(
    '/v1/auth/recovery-codes',
    {
      config: { permission: SELF_PERMISSION },
      schema: {
        tags: auth,
        summary: 'New recovery codes (shown once; the old ones stop working). Needs a current TOTP code.',
        body: Code,
        response: { 200: Type.Object({ recovery_codes: Type.Array(Type.String()) }) },
      },
    },
    async (req, reply) => {
      reply.header('cache-control', 'no-store');
      return identity.regenerateRecoveryCodes(p(req), req.body.code);
    },
  );

  // ---- operators ----
  const ops = ['operators'];
  app.post<{ Body: Static<typeof CreateOperator> }>(
    '/v1/operators',
    {
      config: { permission: 'operators:write' },
      schema: {
        tags: ops,
        summary: 'Create an operator account; answers with a temporary password, shown once',
        body: CreateOperator,
        response: { 201: OperatorWithPassword },
      },
    },
    async (req, reply) => reply.status(201).send(await identity.createOperator(p(req), req.body)),
  );

  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/v1/operators',
    {
      config: { permission: 'operators:read' },
      schema: { tags: ops, querystring: ListQuery, response: { 200: pageOf(Operator) } },
    },
    async (req) => identity.listOperators(p(req), { limit: req.query.limit, before: decodeCursor(req.query.cursor) }),
  );

  // The six-monthly access review (PCI DSS 7.2.4), as `tillpoint access review` prints it: every
  // account and active API key with roles or permissions and last use. Platform-wide, so only a
  // platform operator may read it; the read is recorded (who looked at the review, and when).
  app.get(
    '/v1/access-review',
    {
      config: { permission: 'operators:read', audit: 'access' },
      schema: {
        tags: ops,
        summary: 'Every operator account and active API key with roles or permissions and last use',
        response: {
          200: Type.Object({
            generated_at: ts,
            operators: Type.Array(
              Type.Object({
                ...Operator.properties,
                days_since_use: Type.Union([Type.Integer(), Type.Null()]),
                permissions: Type.Array(Type.String()),
              }),
            ),
            api_keys: Type.Array(
              Type.Object({
                id: Type.String(),
                name: Type.String(),
                merchant_id: Type.Union([Type.String(), Type.Null()]),
                permissions: Type.Array(Type.String()),
                ip_allowlist: Type.Array(Type.String()),
                created_at: nts,
                expires_at: nts,
                last_used_at: nts,
                days_since_use: Type.Union([Type.Integer(), Type.Null()]),
              }),
            ),
          }),
        },
      },
    },
    async (req) => {
      if (p(req).merchantId !== null)
        throw new AppError('forbidden', 'The access review covers every merchant: platform operators only');
      return identity.accessReview();
    },
  );

  app.get<{ Params: Static<typeof IdParam> }>(
    '/v1/operators/:id',
    {
      config: { permission: 'operators:read' },
      schema: { tags: ops, params: IdParam, response: { 200: Operator } },
    },
    async (req) => identity.getOperator(p(req), req.params.id),
  );

  app.patch<{ Params: Static<typeof IdParam>; Body: Static<typeof UpdateOperator> }>(
    '/v1/operators/:id',
    {
      config: { permission: 'operators:write' },
      schema: {
        tags: ops,
        summary: 'Rename an operator or change their roles (not your own)',
        params: IdParam,
        body: UpdateOperator,
        response: { 200: Operator },
      },
    },
    async (req) => identity.updateOperator(p(req), req.params.id, req.body),
  );

  app.delete<{ Params: Static<typeof IdParam> }>(
    '/v1/operators/:id',
    {
      config: { permission: 'operators:write' },
      schema: {
        tags: ops,
        summary: 'Delete an operator account (kept, marked deleted, for the audit trail)',
        params: IdParam,
        response: { 200: Operator },
      },
    },
    async (req) => identity.setStatus(p(req), req.params.id, 'deleted'),
  );

  const action = <B>(
    path: string,
    summary: string,
    body: B | undefined,
    run: (pr: Principal, id: string, b: any) => Promise<unknown>,
  ) =>
    app.post<{ Params: Static<typeof IdParam> }>(
      `/v1/operators/:id/${path}`,
      {
        config: { permission: 'operators:write' },
        schema: { tags: ops, summary, params: IdParam, ...(body ? { body } : {}) },
      },
      async (req) => run(p(req), req.params.id, req.body ?? {}),
    );
  action('disable', 'Disable an account; its sessions end', Reason, (pr, id, b) =>
    identity.setStatus(pr, id, 'disabled', b.reason),
  );
  action('enable', 'Re-enable a disabled account', undefined, (pr, id) => identity.setStatus(pr, id, 'active'));
  action('unlock', 'Lift a lockout after failed sign-ins', undefined, (pr, id) => identity.unlock(pr, id));
  action('reset-password', 'Issue a temporary password (shown once); sessions end', undefined, (pr, id) =>
    identity.resetPassword(pr, id),
  );
  // Four eyes: over the API an MFA reset is a request a second operator approves
  // (POST /v1/approvals/{id}/approve); it answers 202 approval_required with the request. The
  // `tillpoint operators reset-mfa` command is the break-glass path for someone with server access.
  app.post<{ Params: Static<typeof IdParam> }>(
    '/v1/operators/:id/reset-mfa',
    {
      config: { permission: 'operators:write' },
      schema: {
        tags: ops,
        summary:
          "Ask for an operator's MFA reset (their TOTP secret and recovery codes forgotten, sessions ended, enrolment at next sign-in). A second operator with operators:approve must approve it: answers 202 approval_required with the request",
        params: IdParam,
        response: { 202: ApprovalRequired },
      },
    },
    async (req) => {
      const approval = await identity.requestMfaReset(p(req), req.params.id);
      throw new AppError(
        'approval_required',
        'Filed: another operator with operators:approve must approve this MFA reset',
        { approval },
      );
    },
  );

  // ---- API keys ----
  const keys = ['api-keys'];
  app.post<{ Body: Static<typeof CreateApiKey> }>(
    '/v1/api-keys',
    {
      config: { permission: 'api_keys:write' },
      schema: {
        tags: keys,
        summary: 'Issue an API key (the key is in this answer only)',
        body: CreateApiKey,
        response: { 201: ApiKeyWithSecret },
      },
    },
    async (req, reply) => {
      reply.header('cache-control', 'no-store');
      return reply.status(201).send(await apiKeys.create(p(req), req.body));
    },
  );

  app.get<{ Querystring: Static<typeof KeyListQuery> }>(
    '/v1/api-keys',
    {
      config: { permission: 'api_keys:read' },
      schema: { tags: keys, querystring: KeyListQuery, response: { 200: pageOf(ApiKey) } },
    },
    async (req) =>
      apiKeys.list(p(req), {
        limit: req.query.limit,
        before: decodeCursor(req.query.cursor),
        merchant_id: req.query.merchant_id,
      }),
  );

  app.get<{ Params: Static<typeof IdParam> }>(
    '/v1/api-keys/:id',
    {
      config: { permission: 'api_keys:read' },
      schema: { tags: keys, params: IdParam, response: { 200: ApiKey } },
    },
    async (req) => apiKeys.get(p(req), req.params.id),
  );

  app.post<{ Params: Static<typeof IdParam>; Body: Static<typeof Reason> }>(
    '/v1/api-keys/:id/revoke',
    {
      config: { permission: 'api_keys:write' },
      schema: {
        tags: keys,
        summary: 'Revoke a key at once',
        params: IdParam,
        body: Type.Optional(Reason),
        response: { 200: ApiKey },
      },
    },
    async (req) => apiKeys.revoke(p(req), req.params.id, req.body?.reason),
  );

  app.post<{ Params: Static<typeof IdParam>; Body: Static<typeof Rotate> }>(
    '/v1/api-keys/:id/rotate',
    {
      config: { permission: 'api_keys:write' },
      schema: {
        tags: keys,
        summary:
          'Issue a replacement key with the same scope; the old key keeps working for overlap_hours (default 24), then expires',
        params: IdParam,
        body: Type.Optional(Rotate),
        response: { 201: ApiKeyWithSecret },
      },
    },
    async (req, reply) => {
      reply.header('cache-control', 'no-store');
      return reply.status(201).send(await apiKeys.rotate(p(req), req.params.id, req.body ?? {}));
    },
  );
}
