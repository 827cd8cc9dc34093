import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { Principal } from '../../platform/principal.ts';
import { TOKEN_PURPOSES, type TokenService } from './tokens.ts';

// Tokenization over HTTP. Detokenizing returns the real value, so it has its own permission
// (`vault:detokenize`, granted to no merchant key by default), is a POST (the token never sits in
// a URL or an access log) and is recorded before anything is returned.

const Purpose = Type.Union(TOKEN_PURPOSES.map((p) => Type.Literal(p)));
const Tokenize = Type.Object(
  { purpose: Purpose, value: Type.String({ minLength: 1, maxLength: 255 }) },
  { additionalProperties: false },
);
const Detokenize = Type.Object(
  {
    token: Type.String({ maxLength: 64 }),
    reason: Type.String({
      minLength: 3,
      maxLength: 200,
      description: 'Why the value is needed; kept in the access log',
    }),
  },
  { additionalProperties: false },
);
const TokenOut = Type.Object({ token: Type.String(), purpose: Purpose, masked: Type.String() });
const ValueOut = Type.Object({ token: Type.String(), purpose: Purpose, value: Type.String() });

export function registerVaultRoutes(app: FastifyInstance, tokens: TokenService) {
  const p = (req: { principal?: Principal }) => req.principal!;
  app.post<{ Body: Static<typeof Tokenize> }>(
    '/v1/vault/tokens',
    {
      config: { permission: 'vault:tokenize' },
      schema: {
        tags: ['vault'],
        summary: 'Replace a sensitive value with a token (the same value gives the same token)',
        body: Tokenize,
        response: { 200: TokenOut, 201: TokenOut },
      },
    },
    async (req, reply) => {
      const t = await tokens.tokenize(p(req), req.body);
      return reply.status(t.created ? 201 : 200).send({ token: t.token, purpose: t.purpose, masked: t.masked });
    },
  );

  app.post<{ Body: Static<typeof Detokenize> }>(
    '/v1/vault/detokenize',
    {
      config: { permission: 'vault:detokenize' },
      schema: {
        tags: ['vault'],
        summary: 'The value behind a token (audited; needs vault:detokenize)',
        body: Detokenize,
        response: { 200: ValueOut },
      },
    },
    async (req) => tokens.detokenize(p(req), req.body, { requestId: req.id, remoteAddr: req.ip }),
  );
}
