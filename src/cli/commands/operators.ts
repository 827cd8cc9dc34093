import { parseArgs } from 'node:util';
import { ConfigError } from '../../platform/config.ts';
import { withDb, type Command, UsageError } from '../command.ts';

// `tillpoint operators …`: the way to make the first security administrator, and a fallback
// for account administration when nobody can sign in. Every change is recorded as done from
// the command line by the OS user.

const USAGE = [
  'operators create --email EMAIL --name NAME --roles a,b [--merchant mer_…]',
  'operators list',
  'operators unlock|disable|enable|reset-password|reset-mfa <operator id>',
].join('\n  ');

export const operators: Command = {
  name: 'operators',
  usage: USAGE,
  summary:
    'Create operator accounts (a temporary password is printed once; TOTP is enrolled at first sign-in) and unlock, disable, enable or reset them. reset-mfa here is break-glass for someone with server access (at once, recorded as such); over the API an MFA reset needs a second administrator.',
  async run(argv) {
    const [sub, ...rest] = argv;
    const { createIdentityService, ROLE_NAMES } = await import('../../modules/identity/index.ts');
    const { createAuditWriter, loadAuditKeys } = await import('../../modules/audit/index.ts');
    const { createLogger } = await import('../../platform/log.ts');
    const { systemClock } = await import('../../platform/clock.ts');
    const run = <T>(fn: (identity: ReturnType<typeof createIdentityService>) => Promise<T>) =>
      withDb(async (db, config) => {
        const writer = createAuditWriter({
          keys: loadAuditKeys({ mode: config.mode, dataDir: config.dataDir, signingKey: config.audit.signingKey }),
          clock: systemClock,
        });
        return fn(
          createIdentityService({
            db,
            config,
            clock: systemClock,
            audit: writer,
            logger: createLogger({ level: 'warn' }),
          }),
        );
      });
    const print = (v: unknown) => process.stdout.write(JSON.stringify(v, null, 2) + '\n');
    switch (sub) {
      case 'create': {
        const { values } = parseArgs({
          args: rest,
          options: {
            email: { type: 'string' },
            name: { type: 'string' },
            roles: { type: 'string' },
            merchant: { type: 'string' },
          },
        });
        for (const k of ['email', 'name', 'roles'] as const)
          if (!values[k]) throw new ConfigError(`--${k}`, 'is required');
        const roles = values
          .roles!.split(',')
          .map((r) => r.trim())
          .filter(Boolean);
        for (const r of roles)
          if (!(ROLE_NAMES as string[]).includes(r))
            throw new ConfigError('--roles', `unknown role "${r}"; roles: ${ROLE_NAMES.join(', ')}`);
        const r = await run((i) =>
          i.createOperator(null, {
            email: values.email!,
            name: values.name!,
            roles,
            merchant_id: values.merchant ?? null,
          }),
        );
        print(r);
        process.stderr.write(
          'Hand the temporary password over in person or by a separate channel: it is not shown again, and must be changed at first sign-in.\n',
        );
        return 0;
      }
      case 'list': {
        const r = await run((i) => i.accessReview());
        print(r.operators);
        return 0;
      }
      case 'unlock':
      case 'disable':
      case 'enable':
      case 'reset-password':
      case 'reset-mfa': {
        const id = rest[0];
        if (!id) throw new UsageError(`usage: tillpoint operators ${sub} <operator id>`);
        const r = await run((i): Promise<unknown> => {
          switch (sub) {
            case 'unlock':
              return i.unlock(null, id);
            case 'disable':
              return i.setStatus(null, id, 'disabled', 'from the command line');
            case 'enable':
              return i.setStatus(null, id, 'active');
            case 'reset-password':
              return i.resetPassword(null, id);
            default:
              return i.resetMfa(null, id);
          }
        });
        print(r);
        return 0;
      }
      default:
        throw new UsageError(`usage:\n  tillpoint ${USAGE.split('\n  ').join('\n  tillpoint ')}`);
    }
  },
};
