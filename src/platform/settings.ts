import { readFileSync } from 'node:fs';
import type { TObject, TSchema } from '@sinclair/typebox';

// The machinery every settings section uses: the error a bad setting stops the start with, the
// readers for environment variables, and the section type a module declares its settings with.
// A leaf of platform (it imports nothing of the project), so config.ts, secrets.ts, tls.ts and
// the modules' *.settings.ts can all use it without import cycles.
//
// A section is a TypeBox schema of the environment variables it reads (one property per
// variable, with `description` and, where the default is a fixed value, `default`) and a `load`
// function that turns them into its part of the composed Config. The schema is what the README's
// configuration reference is generated from (scripts/config-reference.ts) and what the composed
// loader checks every read against (src/config.ts): a variable read but not declared stops the
// start, so the reference cannot miss one.
//
// A module's settings, step by step: write src/modules/<m>/<m>.settings.ts exporting
// `<m>Settings = defineSettings({ title, source, schema, load })`; add its part to the Config
// interface there (`declare module '../../platform/config.ts' { interface Config extends MConfig {} }`);
// list it in SETTINGS in src/config.ts; run `npm run docs:config`. src/config.test.ts checks each step.

export type Mode = 'development' | 'test' | 'production';
export type Env = Record<string, string | undefined>;

export class ConfigError extends Error {
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(`Invalid configuration: ${setting}: ${message}`);
    this.name = 'ConfigError';
  }
}

/** What platform settings a module's settings may depend on (its defaults, its production rules). */
export interface SettingsContext {
  mode: Mode;
  host: string;
  port: number;
  dataDir: string;
  /** Where this process itself is reached on its own listener (a wildcard address is reached on loopback). */
  selfUrl: string;
}

/** Extra keywords a setting's schema may carry, read by the reference generator. */
export interface SettingDoc {
  description: string;
  /** The default in words, where it is not one fixed value (depends on the mode or another setting). */
  defaultText?: string;
  /** Holds a secret and may instead be read from a file: NAME_FILE=/path (a Kubernetes Secret volume). */
  fromFile?: boolean;
}

export interface SettingsSection<C extends object = object> {
  /** Short name, the heading of its table in the README. */
  title: string;
  /** The file that declares it (shown in the reference, so a reader finds the code). */
  source: string;
  /** One property per environment variable. */
  schema: TObject;
  /** Its part of the Config, from the environment (already with NAME_FILE values read in). */
  load(env: Env, ctx: SettingsContext): C;
}

/** Declares a section; the identity function, there for the types. */
export function defineSettings<C extends object>(section: SettingsSection<C>): SettingsSection<C> {
  for (const [name, s] of Object.entries(section.schema.properties)) {
    if (!(s as TSchema & Partial<SettingDoc>).description)
      throw new Error(`setting ${name} in ${section.source} has no description`);
  }
  return section;
}

/** The names of the settings in `sections` that may be read from NAME_FILE. */
export function fileSettings(sections: readonly SettingsSection[]): string[] {
  return sections.flatMap((s) =>
    Object.entries(s.schema.properties)
      .filter(([, p]) => (p as Partial<SettingDoc>).fromFile)
      .map(([n]) => n),
  );
}

/** env with every NAME_FILE of `names` replaced by the file's content (trailing newline dropped). */
export function readSettingFiles(env: Env, names: readonly string[]): Env {
  const out = { ...env };
  for (const name of names) {
    const file = env[`${name}_FILE`];
    if (!file) continue;
    if (env[name]) throw new ConfigError(`${name}_FILE`, `and ${name} are both set; give one`);
    try {
      out[name] = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new ConfigError(
        `${name}_FILE`,
        `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
    if (!out[name]) throw new ConfigError(`${name}_FILE`, `${file} is empty`);
  }
  return out;
}

/**
 * `env` that refuses to be read for a name no section declares: a setting read but not declared
 * would be missing from the reference and from the deployment manifests' review.
 */
export function declaredOnly(env: Env, declared: ReadonlySet<string>, onRead?: (name: string) => void): Env {
  return new Proxy(env, {
    get(target, name) {
      if (typeof name === 'string') {
        if (!declared.has(name))
          throw new Error(`setting ${name} is read but no settings schema declares it (add it to a *.settings.ts)`);
        onRead?.(name);
      }
      return Reflect.get(target, name);
    },
  });
}

// Readers. Each takes the variable's name so its error can name it.

export function int(env: Env, name: string, dflt: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(name, `expected an integer, got "${raw}"`);
  const v = Number(raw);
  if (v < min || v > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${v}`);
  return v;
}

/** An integer setting whose default and bounds are its schema's `default`, `minimum` and `maximum`. */
export function intOf(
  schema: TObject,
  env: Env,
  name: string,
  over: { default?: number; minimum?: number; maximum?: number } = {},
): number {
  const s = schema.properties[name] as { default?: number; minimum?: number; maximum?: number } | undefined;
  if (!s) throw new Error(`setting ${name} is not in its section's schema`);
  const dflt = over.default ?? s.default;
  if (dflt === undefined) throw new Error(`setting ${name} has no default`);
  return int(env, name, dflt, over.minimum ?? s.minimum ?? 0, over.maximum ?? s.maximum ?? Number.MAX_SAFE_INTEGER);
}

export function str(env: Env, name: string, dflt: string): string {
  const raw = env[name];
  return raw === undefined || raw === '' ? dflt : raw;
}

/** A comma-separated list; empty entries dropped. */
export function list(env: Env, name: string): string[] {
  return str(env, name, '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** A listener port: unset = `dflt`, "off" = no listener, 0 = any free port. */
export function listenPort(env: Env, name: string, dflt: number | undefined): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  if (raw === 'off') return undefined;
  return int(env, name, 0, 0, 65535);
}

/** A secret key of 32+ bytes, given as hex or base64; undefined when unset (its user decides if that is allowed). */
export function keyBytes(env: Env, name: string): Buffer | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const v = raw.trim();
  const key = /^(?:[0-9a-fA-F]{2})+$/.test(v)
    ? Buffer.from(v, 'hex')
    : /^[A-Za-z0-9+/_-]+={0,2}$/.test(v)
      ? Buffer.from(v, 'base64')
      : undefined;
  if (!key || key.length < 32) throw new ConfigError(name, 'must be 32 or more random bytes, hex or base64');
  return key;
}

/** A setting's type and bounds in words, from its schema. */
function constraints(s: TSchema): string {
  const parts: string[] = [];
  if (s.anyOf?.every((x: TSchema) => 'const' in x))
    parts.push(`One of ${s.anyOf.map((x: TSchema) => `\`${x.const}\``).join(', ')}.`);
  else if (s.type === 'boolean') parts.push('`true` or `false`.');
  else if (s.type === 'integer' || s.type === 'number') {
    const kind = s.type === 'integer' ? 'An integer' : 'A number';
    if (s.minimum !== undefined && s.maximum !== undefined) parts.push(`${kind}, ${s.minimum} to ${s.maximum}.`);
    else if (s.minimum !== undefined) parts.push(`${kind}, at least ${s.minimum}.`);
    else parts.push(`${kind}.`);
  }
  if ((s as Partial<SettingDoc>).fromFile) parts.push('May be read from a file instead (`_FILE`).');
  return parts.join(' ');
}

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/**
 * The configuration reference in Markdown: one table per section, every variable with its
 * default and meaning, generated from the schemas (the README's "Configuration" section).
 */
export function settingsReference(sections: readonly SettingsSection[]): string {
  const out: string[] = [];
  const files = fileSettings(sections);
  out.push(
    `Settings that hold a secret may instead be read from a file, \`NAME_FILE=/path\` (a mounted Kubernetes Secret): ${files.map((f) => `\`${f}\``).join(', ')}. Giving both is refused.`,
  );
  for (const section of sections) {
    out.push('', `### ${section.title}`, '', `Declared in \`${section.source}\`.`, '');
    out.push('| variable | default | meaning |', '|---|---|---|');
    for (const [name, raw] of Object.entries(section.schema.properties)) {
      const s = raw as TSchema & SettingDoc;
      const dflt = s.defaultText ?? (s.default !== undefined ? `\`${String(s.default)}\`` : '—');
      const meaning = [s.description, constraints(s)].filter(Boolean).join(' ');
      out.push(`| \`${name}\` | ${cell(dflt)} | ${cell(meaning)} |`);
    }
  }
  return `${out.join('\n')}\n`;
}
