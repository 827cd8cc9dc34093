import { Type } from '@sinclair/typebox';
import { defineSettings, keyBytes } from '../../platform/settings.ts';

// The rewards module's settings. Composed into the Config by src/config.ts.

export interface RewardsConfig {
  /** Reward points. customerKey: REWARDS_CUSTOMER_KEY (HMAC key for customer ids); required in production (checked at start), else a key file in the data dir. */
  rewards: { customerKey?: Buffer };
}

declare module '../../platform/config.ts' {
  interface Config extends RewardsConfig {}
}

export const rewardsSettings = defineSettings({
  title: 'Rewards',
  source: 'src/modules/rewards/rewards.settings.ts',
  schema: Type.Object({
    REWARDS_CUSTOMER_KEY: Type.String({
      defaultText: 'a random key under the data dir (not in production)',
      fromFile: true,
      description: 'HMAC key for customer ids: 32 or more random bytes, hex or base64. Required in production.',
    }),
  }),
  load: (env): RewardsConfig => ({ rewards: { customerKey: keyBytes(env, 'REWARDS_CUSTOMER_KEY') } }),
});
