import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * A benchmark's --help text: the first run of `//` comment lines in its own file, where its usage
 * is written next to the code that reads the options (one place to keep true).
 */
export function headerUsage(fileUrl: string): string {
  const lines = readFileSync(fileURLToPath(fileUrl), 'utf8').split('\n');
  const start = lines.findIndex((l) => l.startsWith('//'));
  if (start < 0) return '';
  const end = lines.findIndex((l, i) => i > start && !l.startsWith('//'));
  return `${lines
    .slice(start, end < 0 ? undefined : end)
    .map((l) => l.replace(/^\/\/ ?/, ''))
    .join('\n')}\n`;
}
