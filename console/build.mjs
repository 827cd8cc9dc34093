#!/usr/bin/env node
// Builds the operator console into console/dist when its sources changed since the last build.
// `npm start` (bin/tillpoint.mjs serve) calls ensureConsoleBuilt(); nothing built is committed.
// "Changed" is a SHA-256 over console/src, index.html, the Vite config and package-lock.json (so a
// dependency upgrade rebuilds too), stored beside the output: a checkout or a copy that
// changes file times does not force a rebuild, and an unchanged tree costs a few milliseconds.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const consoleDir = fileURLToPath(new URL('.', import.meta.url));
const rootDir = join(consoleDir, '..');
export const distDir = join(consoleDir, 'dist');
const stampFile = join(distDir, '.build-hash');

function files(dir) {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const full = join(dir, name);
      if (name === 'dist' || name === 'node_modules') return [];
      return statSync(full).isDirectory() ? files(full) : [full];
    });
}

export function sourceHash() {
  const h = createHash('sha256');
  const inputs = [
    ...files(join(consoleDir, 'src')),
    join(consoleDir, 'index.html'),
    join(consoleDir, 'vite.config.mjs'),
    join(rootDir, 'package-lock.json'),
  ];
  for (const f of inputs) {
    h.update(relative(rootDir, f)).update('\0').update(readFileSync(f)).update('\0');
  }
  return h.digest('hex');
}

/** Builds when stale; resolves to 'fresh' or 'built'. */
export async function ensureConsoleBuilt({ log = (m) => process.stderr.write(m + '\n'), force = false } = {}) {
  const hash = sourceHash();
  if (
    !force &&
    existsSync(join(distDir, 'index.html')) &&
    existsSync(stampFile) &&
    readFileSync(stampFile, 'utf8') === hash
  )
    return 'fresh';
  const started = Date.now();
  log('Building the operator console (console/ → console/dist)…');
  const { build } = await import('vite');
  await build({ configFile: join(consoleDir, 'vite.config.mjs'), logLevel: 'warn' });
  writeFileSync(stampFile, hash);
  log(`Console built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return 'built';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await ensureConsoleBuilt({ force: process.argv.includes('--force') });
}
