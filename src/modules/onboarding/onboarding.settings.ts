import { Type } from '@sinclair/typebox';
import { defineSettings, type Env } from '../../platform/settings.ts';

// The onboarding module's settings. Composed into the Config by src/config.ts.

export interface OnboardingConfig {
  onboarding: {
    /** Encrypts the per-store certificate bundles of `import terminals --credentials certificates`. */
    bundlePassphrase?: string;
  };
}

declare module '../../platform/config.ts' {
  interface Config extends OnboardingConfig {}
}

export const onboardingSettings = defineSettings({
  title: 'Onboarding (bulk import)',
  source: 'src/modules/onboarding/onboarding.settings.ts',
  schema: Type.Object({
    IMPORT_BUNDLE_PASSPHRASE: Type.String({
      fromFile: true,
      defaultText: 'unset: certificate bundles cannot be written',
      description:
        'Passphrase (16 characters or more) that encrypts the per-store terminal certificate bundles written by `import terminals --credentials certificates`.',
    }),
  }),
  load: (env: Env): OnboardingConfig => ({
    onboarding: { bundlePassphrase: env.IMPORT_BUNDLE_PASSPHRASE || undefined },
  }),
});
