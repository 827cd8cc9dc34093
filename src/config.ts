import type { Config } from './platform/config.ts';
import { httpSettings, loadPlatform, platformSettings, settingsContext } from './platform/config.ts';
import { launcherSettings } from './cli/launcher.settings.ts';
import { awsSettings } from './platform/awsCredentials.ts';
import { secretsSettings } from './platform/secrets.ts';
import { declaredOnly, fileSettings, readSettingFiles, type Env, type SettingsSection } from './platform/settings.ts';
import { tlsSettings } from './platform/tls.ts';
import { tracingSettingsSection } from './platform/tracing.ts';
import { auditSettings } from './modules/audit/audit.settings.ts';
import { banksSettings } from './modules/banks/banks.settings.ts';
import { edgeSettings } from './http/edge/edge.settings.ts';
import { identitySettings } from './modules/identity/identity.settings.ts';
import { paymentsSettings } from './modules/payments/payments.settings.ts';
import { rewardsSettings } from './modules/rewards/rewards.settings.ts';
import { terminalsSettings } from './modules/terminals/terminals.settings.ts';
import { vaultSettings } from './modules/vault/vault.settings.ts';
import { settlementSettings } from './modules/settlement/settlement.settings.ts';
import { onboardingSettings } from './modules/onboarding/onboarding.settings.ts';

// The one place the settings are composed: the platform's sections, then one per module, each
// declared beside its code (*.settings.ts: a TypeBox schema of the environment variables it reads,
// with descriptions and defaults, and a load function). The README's configuration reference is
// generated from this list (npm run docs:config) and src/config.test.ts fails when it is stale or
// when a *.settings.ts is left out of it.
//
// The settings files are imported directly, not through the modules' index.ts: configuration is
// read before anything else (every CLI command does), and a settings file imports only platform.

export type { Config } from './platform/config.ts';
export { ConfigError, type Mode } from './platform/settings.ts';

/** Every section, in the order of the reference. The platform's comes first: it gives the others their context. */
export const SETTINGS = [
  platformSettings,
  httpSettings,
  tlsSettings,
  secretsSettings,
  awsSettings,
  tracingSettingsSection,
  banksSettings,
  paymentsSettings,
  terminalsSettings,
  rewardsSettings,
  identitySettings,
  auditSettings,
  vaultSettings,
  settlementSettings,
  onboardingSettings,
  edgeSettings,
  launcherSettings,
] as const satisfies readonly SettingsSection[];

// Compile-time check that the sections, together, give every field of Config (the modules add
// their fields to Config in their *.settings.ts; a section left out of SETTINGS fails here).
type Loaded = UnionToIntersection<ReturnType<(typeof SETTINGS)[number]['load']>>;
type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;
const composedGivesConfig = (c: Loaded): Config => c;
void composedGivesConfig;

/** Every environment variable a section declares. */
export const DECLARED_SETTINGS: ReadonlySet<string> = new Set(
  SETTINGS.flatMap((s) => Object.keys(s.schema.properties)),
);

/** Settings that hold a secret and may instead be read from a file: NAME_FILE=/path (a Kubernetes Secret volume). */
export const FILE_SETTINGS: readonly string[] = fileSettings(SETTINGS);

/**
 * Reads the whole configuration once, at start. A bad or missing setting throws a ConfigError
 * naming it. `onRead` sees every variable read (tests check that each declared one is).
 */
export function loadConfig(rawEnv: Env = process.env, o: { onRead?: (name: string) => void } = {}): Config {
  const env = declaredOnly(readSettingFiles(rawEnv, FILE_SETTINGS), DECLARED_SETTINGS, o.onRead);
  const platform = loadPlatform(env);
  const ctx = settingsContext(platform, env);
  const config = { ...platform };
  for (const section of SETTINGS) {
    if (section !== platformSettings) Object.assign(config, section.load(env, ctx));
  }
  return config as Loaded;
}
