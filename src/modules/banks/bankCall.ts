import { AppError, isAppError } from '../../platform/errors.ts';
import { BankCallError, type BankCallOutcome } from './types.ts';

/**
 * Runs one connector call and says how it ended (types.ts BankCallOutcome). A BankCallError
 * carries its own kind; anything else a connector throws (a bug, an error from a library that
 * does not say where it stopped) is `uncertain`: not knowing whether the bank acted is exactly
 * the case in which nothing may be closed or released.
 */
export async function callBank<T>(fn: () => Promise<T>): Promise<BankCallOutcome<T>> {
  try {
    return { kind: 'ok', value: await fn() };
  } catch (e) {
    if (e instanceof BankCallError) return { kind: e.delivery, error: e };
    const error = isAppError(e)
      ? e
      : new AppError('bank_unavailable', 'The bank call failed', { cause: (e as Error)?.name ?? typeof e });
    return { kind: 'uncertain', error };
  }
}
