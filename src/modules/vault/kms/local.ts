import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  linkSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname } from 'node:path';
import {
  KmsError,
  contextBytes,
  type KekInfo,
  type KeyContext,
  type KeyManager,
  type WrappedDataKey,
} from './types.ts';

// The embedded key manager: key-encrypting keys in a small JSON keyring, either a file under the
// data directory (mode 0600, created on first start in development) or the value of a secret in
// production. Data keys are wrapped with AES-256-GCM under the current KEK version, with the key
// context as associated data.
//
// Wrapped form: "lk1:<kek version>:<base64url(iv | ciphertext | tag)>".

export const KEYRING_FORMAT = 'tillpoint-keyring/1';

interface KeyringEntry {
  version: number;
  /** base64 of 32 bytes; absent once retired (the material is erased). */
  key?: string;
  created_at: string;
  retired?: boolean;
}
interface KeyringFile {
  format: string;
  keys: KeyringEntry[];
}

export type KeyringSource =
  | { kind: 'file'; path: string; createIfMissing: boolean }
  /** The keyring JSON from a secrets provider; read again when an unknown version shows up. */
  | { kind: 'secret'; name: string; load: () => Promise<string> };

/** A new keyring with one KEK, as JSON (what `tillpoint keys init-keyring` prints for a secret). */
export function newKeyringJson(now = new Date()): string {
  const ring: KeyringFile = {
    format: KEYRING_FORMAT,
    keys: [{ version: 1, key: randomBytes(32).toString('base64'), created_at: now.toISOString() }],
  };
  return JSON.stringify(ring, null, 2) + '\n';
}

function parseKeyring(text: string, where: string): KeyringFile {
  let ring: KeyringFile;
  try {
    ring = JSON.parse(text);
  } catch {
    // Never echo the text: it is key material.
    throw new KmsError('local', 'load', `${where} is not valid keyring JSON`, false);
  }
  if (ring?.format !== KEYRING_FORMAT || !Array.isArray(ring.keys) || ring.keys.length === 0) {
    throw new KmsError('local', 'load', `${where} is not a ${KEYRING_FORMAT} keyring`, false);
  }
  for (const k of ring.keys) {
    if (!Number.isInteger(k.version) || k.version < 1)
      throw new KmsError('local', 'load', `${where}: a key has no valid version`, false);
    if (!k.retired && (typeof k.key !== 'string' || Buffer.from(k.key, 'base64').length !== 32)) {
      throw new KmsError('local', 'load', `${where}: key version ${k.version} is not 32 bytes of base64`, false);
    }
  }
  return ring;
}

function writeKeyringFile(path: string, ring: KeyringFile) {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // Write beside and rename: a reader never sees half a keyring, and a crash leaves the old one.
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(ring, null, 2) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/**
 * Creates the keyring unless it exists, atomically: two processes starting on one data directory
 * (api and worker) must end up with the same KEK, never each with its own. The file is written
 * beside and hard-linked into place, which fails if another process got there first.
 */
function createKeyringFileOnce(path: string, json: string) {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.${Date.now()}.new`;
  writeFileSync(tmp, json, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  try {
    linkSync(tmp, path);
  } catch (e) {
    if ((e as { code?: string }).code !== 'EEXIST') throw e;
  } finally {
    unlinkSync(tmp);
  }
}

function readKeyringFile(path: string): KeyringFile {
  const st = statSync(path);
  // Like ssh with a private key: a keyring others can read is refused, not used.
  if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
    throw new KmsError(
      'local',
      'load',
      `keyring file ${path} is accessible by other users (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 on it`,
      false,
    );
  }
  return parseKeyring(readFileSync(path, 'utf8'), `keyring file ${path}`);
}

const WRAP_RE = /^lk1:(\d{1,9}):([A-Za-z0-9_-]+)$/;

export function createLocalKeyManager(source: KeyringSource, opts: { now?: () => Date } = {}): KeyManager {
  const now = opts.now ?? (() => new Date());
  let ring: KeyringFile | undefined;

  async function load(): Promise<KeyringFile> {
    if (source.kind === 'file') {
      if (!existsSync(source.path)) {
        if (!source.createIfMissing) throw new KmsError('local', 'load', `no keyring at ${source.path}`, false);
        createKeyringFileOnce(source.path, newKeyringJson(now()));
      }
      return readKeyringFile(source.path);
    }
    return parseKeyring(await source.load(), `keyring secret "${source.name}"`);
  }
  async function getRing(): Promise<KeyringFile> {
    ring ??= await load();
    return ring;
  }
  function current(r: KeyringFile): KeyringEntry {
    const live = r.keys.filter((k) => !k.retired);
    if (live.length === 0) throw new KmsError('local', 'load', 'the keyring has no usable key', false);
    return live.reduce((a, b) => (b.version > a.version ? b : a));
  }
  async function entry(version: number): Promise<KeyringEntry> {
    let e = (await getRing()).keys.find((k) => k.version === version);
    if (!e) {
      // Another process (the `keys rotate --kek` command) may have added it: read the keyring again.
      ring = await load();
      e = ring.keys.find((k) => k.version === version);
    }
    if (!e) throw new KmsError('local', 'unwrap', `KEK version ${version} is not in the keyring`, false);
    if (e.retired || !e.key) throw new KmsError('local', 'unwrap', `KEK version ${version} is retired`, false);
    return e;
  }

  function wrapWith(e: KeyringEntry, dek: Buffer, context: KeyContext): string {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', Buffer.from(e.key!, 'base64'), iv);
    c.setAAD(contextBytes(context));
    const ct = Buffer.concat([c.update(dek), c.final()]);
    return `lk1:${e.version}:${Buffer.concat([iv, ct, c.getAuthTag()]).toString('base64url')}`;
  }

  async function unwrap(wrapped: string, context: KeyContext): Promise<Buffer> {
    const m = WRAP_RE.exec(wrapped);
    if (!m) throw new KmsError('local', 'unwrap', 'not a local-keyring wrapped key', false);
    const e = await entry(Number(m[1]));
    const raw = Buffer.from(m[2], 'base64url');
    if (raw.length !== 12 + 32 + 16) throw new KmsError('local', 'unwrap', 'wrapped key has the wrong length', false);
    try {
      const d = createDecipheriv('aes-256-gcm', Buffer.from(e.key!, 'base64'), raw.subarray(0, 12));
      d.setAAD(contextBytes(context));
      d.setAuthTag(raw.subarray(44));
      return Buffer.concat([d.update(raw.subarray(12, 44)), d.final()]);
    } catch {
      throw new KmsError('local', 'unwrap', 'wrapped key failed authentication (wrong context or altered)', false);
    }
  }

  const describeRing = (r: KeyringFile): KekInfo => {
    const c = current(r);
    return {
      provider: 'local',
      kekRef: `local:v${c.version}`,
      createdAt: new Date(c.created_at),
      versions: r.keys.map((k) => ({ version: k.version, createdAt: new Date(k.created_at), usable: !k.retired })),
    };
  };

  function mustBeWritable(op: string): string {
    if (source.kind !== 'file') {
      throw new KmsError(
        'local',
        op,
        `the keyring comes from the secret "${source.name}": change the secret instead (add a version with "tillpoint keys keyring-add-version", update the secret, then run "tillpoint keys rewrap-deks")`,
        false,
      );
    }
    return source.path;
  }

  return {
    provider: 'local',
    async generateDataKey(context): Promise<WrappedDataKey> {
      const e = current(await getRing());
      const plaintext = randomBytes(32);
      return { plaintext, wrapped: wrapWith(e, plaintext, context), kekRef: `local:v${e.version}` };
    },
    unwrap,
    async rewrap(wrapped, context) {
      const dek = await unwrap(wrapped, context);
      try {
        const e = current(await getRing());
        return { wrapped: wrapWith(e, dek, context), kekRef: `local:v${e.version}` };
      } finally {
        dek.fill(0);
      }
    },
    async rotate() {
      const path = mustBeWritable('rotate');
      const r = readKeyringFile(path);
      const next = Math.max(...r.keys.map((k) => k.version)) + 1;
      r.keys.push({ version: next, key: randomBytes(32).toString('base64'), created_at: now().toISOString() });
      writeKeyringFile(path, r);
      ring = r;
      return describeRing(r);
    },
    async retireOldVersions() {
      const path = mustBeWritable('retire');
      const r = readKeyringFile(path);
      const c = current(r);
      let n = 0;
      for (const k of r.keys) {
        if (k.version !== c.version && !k.retired) {
          k.retired = true;
          delete k.key; // erased, not just flagged: a retired KEK cannot be brought back
          n++;
        }
      }
      writeKeyringFile(path, r);
      ring = r;
      return n;
    },
    async describe() {
      ring = await load();
      return describeRing(ring);
    },
  };
}

/** Adds a KEK version to keyring JSON (for keyrings kept in a secret). */
export function addKeyringVersion(json: string, now = new Date()): string {
  const r = parseKeyring(json, 'keyring');
  r.keys.push({
    version: Math.max(...r.keys.map((k) => k.version)) + 1,
    key: randomBytes(32).toString('base64'),
    created_at: now.toISOString(),
  });
  return JSON.stringify(r, null, 2) + '\n';
}
