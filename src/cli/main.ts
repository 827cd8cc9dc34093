import { ConfigError } from '../platform/config.ts';
import { UsageError } from './command.ts';
import { COMMANDS } from './commands/index.ts';

// The `tillpoint` command: dispatches to commands/. Configuration comes from the environment.

function help(): string {
  const lines = ['tillpoint <command> [options]', '', 'Commands:'];
  for (const c of COMMANDS) lines.push(`  ${c.usage}`, `      ${c.summary}`);
  lines.push(
    '  help',
    '      This text.',
    '',
    'Configuration comes from the environment; README.md lists every setting.',
  );
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number | undefined> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(help() + '\n');
    return 0;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    process.stderr.write(`unknown command "${name}"\n\n${help()}\n`);
    return 2;
  }
  return cmd.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exit(code);
  },
  (e) => {
    // Usage and configuration mistakes (exit 2) name what was wrong; anything else is reported
    // without a stack (exit 1).
    const usage = e instanceof ConfigError || e instanceof UsageError;
    // A bad command-line option (the commands report them as ConfigErrors naming the flag) is a
    // usage mistake, not the configuration's.
    const flag =
      e instanceof ConfigError && e.setting.startsWith('--')
        ? `tillpoint ${process.argv[2]}: ${e.message.replace(/^Invalid configuration: /, '')}`
        : undefined;
    process.stderr.write(flag ? `${flag}\n` : usage ? `${e.message}\n` : `tillpoint: ${(e as Error).message}\n`);
    process.exit(usage ? 2 : 1);
  },
);
