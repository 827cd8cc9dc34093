// Writes the configuration reference into README.md, between the config-reference markers
// (npm run docs:config). src/config.test.ts fails when the README's copy differs from this.
import { readFileSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SETTINGS } from './config.ts';
import { settingsReference } from './platform/settings.ts';

export const README = join(dirname(fileURLToPath(import.meta.url)), '..', 'README.md');
export const BEGIN =
  '<!-- config-reference:begin (generated from the *.settings.ts schemas by `npm run docs:config`; edit those, not this) -->';
export const END = '<!-- config-reference:end -->';

/** The README's text with the generated block replaced by a fresh one. */
export function withReference(readme: string): string {
  const a = readme.indexOf(BEGIN);
  const b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error(`README.md has no ${BEGIN} … ${END} block`);
  return `${readme.slice(0, a + BEGIN.length)}\n${settingsReference(SETTINGS)}${readme.slice(b)}`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const before = readFileSync(README, 'utf8');
  const after = withReference(before);
  writeFileSync(README, after);
  process.stdout.write(
    before === after
      ? 'README.md: configuration reference up to date\n'
      : 'README.md: configuration reference rewritten\n',
  );
}
