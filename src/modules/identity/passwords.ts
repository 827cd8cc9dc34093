import argon2 from 'argon2';
import { randomInt } from 'node:crypto';
import { AppError } from '../../platform/errors.ts';
import { COMMON_BASES, COMMON_PASSWORDS } from './commonPasswords.ts';

// Operator passwords: the rules (PCI DSS 8.3.6: at least 12 characters with letters and
// digits; not a common password; 8.3.7: not one of the last four) and argon2id hashing.

export const MIN_LENGTH = 12;
// argon2 takes any length; the cap keeps a megabyte "password" from costing a megabyte of hashing.
export const MAX_LENGTH = 128;
export const HISTORY_DEPTH = 4;

export interface HashCost {
  memoryKib: number;
  timeCost: number;
}

export function hashPassword(password: string, cost: HashCost): Promise<string> {
  return argon2.hash(password, {
    type: argon2.argon2id,
    memoryCost: cost.memoryKib,
    timeCost: cost.timeCost,
    parallelism: 1,
  });
}

export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, password);
  } catch {
    return false;
  }
}

/**
 * Spends the time of one verification when there is nothing to verify (unknown email), so
 * the response time does not tell which emails have accounts.
 */
let dummyHash: Promise<string> | undefined;
export async function verifyNothing(password: string, cost: HashCost): Promise<false> {
  dummyHash ??= hashPassword('tillpoint-no-such-account-0', cost);
  await verifyPassword(await dummyHash, password);
  return false;
}

/** Why a password is refused, or undefined when it is acceptable. Never echoes the password. */
export function passwordProblem(password: string, context: { email?: string; name?: string } = {}): string | undefined {
  if (typeof password !== 'string' || password.length < MIN_LENGTH) return `must be at least ${MIN_LENGTH} characters`;
  if (password.length > MAX_LENGTH) return `must be at most ${MAX_LENGTH} characters`;
  if (!/\p{L}/u.test(password) || !/\p{Nd}/u.test(password)) return 'must contain both letters and digits';
  const lower = password.toLowerCase();
  if (COMMON_PASSWORDS.has(lower)) return 'is on the list of common passwords';
  // A common word with only digits and symbols around it is as weak as the word.
  const core = lower.replace(/^[^\p{L}]+|[^\p{L}]+$/gu, '');
  if (COMMON_BASES.includes(core)) return 'is a common word with digits or symbols added';
  if (/^(.)\1+$/u.test(lower.replace(/\d/g, '')) || /^(.{1,4})\1{2,}$/u.test(lower)) return 'is too repetitive';
  for (const word of [context.email?.split('@')[0], ...(context.name?.split(/\s+/) ?? [])]) {
    if (word && word.length >= 4 && lower.includes(word.toLowerCase())) return 'must not contain your name or email';
  }
  return undefined;
}

export function assertAcceptablePassword(password: string, context: { email?: string; name?: string } = {}) {
  const problem = passwordProblem(password, context);
  if (problem)
    throw new AppError('password_rejected', `The password ${problem}`, [{ field: 'body.new_password', problem }]);
}

/** True when `password` matches any of `hashes` (the current one and the history). */
export async function matchesAny(password: string, hashes: readonly string[]): Promise<boolean> {
  for (const h of hashes) if (await verifyPassword(h, password)) return true;
  return false;
}

const ALPHABET = 'abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789';

/** A one-time password someone else hands over (new account, reset): 20 random characters, about 114 bits. */
export function temporaryPassword(): string {
  for (;;) {
    let s = '';
    for (let i = 0; i < 20; i++) s += ALPHABET[randomInt(ALPHABET.length)];
    if (/\d/.test(s) && /[a-zA-Z]/.test(s)) return s;
  }
}
