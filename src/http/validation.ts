import Ajv, { type ErrorObject } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifySchemaCompiler } from 'fastify';

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

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const ajv = httpPart === 'body' ? strict : coercing;
  return ajv.compile(schema as object) as ReturnType<FastifySchemaCompiler<unknown>>;
};

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
