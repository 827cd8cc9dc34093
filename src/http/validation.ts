import { createRequire } from 'node:module';
import Ajv, { type ErrorObject } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifySchemaCompiler, FastifyServerOptions } from 'fastify';

// Two validators. Bodies are validated strictly: no type coercion (the string "100" is not an
// amount), no silent removal of unknown fields. Query strings and path params arrive as text,
// so those are coerced ("limit=10" -> 10) but still checked against the same kind of schema.
function makeAjv(coerce: boolean) {
  const ajv = new Ajv.default({
    coerceTypes: coerce,
    useDefaults: true,
    removeAdditional: false,
    allErrors: false,
    strict: false,
  });
  addFormats.default(ajv);
  return ajv;
}

const strict = makeAjv(false);
const coercing = makeAjv(true);

type Validate = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };

// Under the test runner (scripts/run-tests.mjs sets TEST_LAZY_SCHEMAS=1) a route's validator is
// compiled on its first request instead of when the server starts: compiling every route's
// schemas was about 0.5-0.9 s of CPU per app, in every test process and every server a test
// starts, and most test files call a few routes (docs/testing.md). The same Ajv, the same
// schemas, the same functions; only when they are compiled differs. Everywhere else (and in
// test/security.test.ts, which starts its app without it) every schema compiles at start, so a
// schema Ajv refuses stops the start.
export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const ajv = httpPart === 'body' ? strict : coercing;
  if (process.env.TEST_LAZY_SCHEMAS !== '1')
    return ajv.compile(schema as object) as ReturnType<FastifySchemaCompiler<unknown>>;
  let compiled: Validate | undefined;
  // Fastify reads the errors of a failed validation from the function it was given.
  const validate: Validate = (data) => {
    compiled ??= ajv.compile(schema as object) as Validate;
    const ok = compiled(data);
    validate.errors = compiled.errors;
    return ok;
  };
  return validate as ReturnType<FastifySchemaCompiler<unknown>>;
};

type BuildSerializer = NonNullable<
  NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>['buildSerializer']
>;

// The response serializers likewise, under the test runner: Fastify compiles every route's
// response schemas with fast-json-stringify (an Ajv of its own per schema) when the server starts,
// ~0.45 s of CPU per app (docs/testing.md, "Session 8"), and a test file gets a few responses. With
// TEST_LAZY_SCHEMAS=1 each route's serializer for a status is compiled at its first response: the
// builder is the one Fastify uses by default (its own dependency, resolved from Fastify's place),
// with the same shared schemas and options. Everywhere else Fastify's default runs unchanged.
/** Fastify options that make the response serializers compile on first use under the test runner. */
export function serializerOptions(): Pick<FastifyServerOptions, 'schemaController'> {
  if (process.env.TEST_LAZY_SCHEMAS !== '1') return {};
  const fromFastify = createRequire(createRequire(import.meta.url).resolve('fastify'));
  const defaultBuilder = (fromFastify('@fastify/fast-json-stringify-compiler') as () => BuildSerializer)();
  const buildSerializer: BuildSerializer = (externalSchemas, serializerOpts) => {
    const compile = defaultBuilder(externalSchemas, serializerOpts);
    return (route) => {
      let serialize: ((data: unknown) => string) | undefined;
      return (data: unknown) => {
        serialize ??= compile(route) as (data: unknown) => string;
        return serialize(data);
      };
    };
  };
  return { schemaController: { compilersFactory: { buildSerializer } } };
}

/** Turns Ajv's errors into a short list a client can act on. */
export function describeValidation(errors: ErrorObject[], part: string): { field: string; problem: string }[] {
  return errors.slice(0, 10).map((e) => {
    let field = `${part}${e.instancePath.replaceAll('/', '.')}`;
    if (e.keyword === 'additionalProperties')
      field += `.${(e.params as { additionalProperty: string }).additionalProperty}`;
    if (e.keyword === 'required') field += `.${(e.params as { missingProperty: string }).missingProperty}`;
    const problem = e.keyword === 'additionalProperties' ? 'is not a known field' : (e.message ?? 'is invalid');
    return { field, problem };
  });
}
