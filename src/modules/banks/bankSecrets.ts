import type { SecretStore } from '../../platform/secrets.ts';
import type { BankConfig } from './banks.settings.ts';

/**
 * Binds banks whose BANKS entry names a secret (`secret_name`) to it. The banks module reads
 * `secret` and `previousSecret` from these same objects on every call, so a rotation picked up
 * by the store applies to the next request signed or callback verified.
 */
export async function bindBankSecrets(banks: BankConfig[], store: SecretStore): Promise<void> {
  for (const b of banks) {
    if (!b.secretName) continue;
    const s = await store.watch(b.secretName, `BANKS[${b.code}].secret_name`);
    const apply = () => {
      const [current, previous] = s.verifying();
      b.secret = current;
      b.previousSecret = previous;
    };
    apply();
    s.onChange(apply);
  }
}
