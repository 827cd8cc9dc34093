import { Type } from '@sinclair/typebox';
import { defineSettings } from '../platform/settings.ts';

// What bin/tillpoint.mjs, the `tillpoint` command's entry point, reads before any application
// code runs. Declared here so the configuration reference lists them; nothing to load.
export const launcherSettings = defineSettings({
  title: 'The tillpoint command',
  source: 'src/cli/launcher.settings.ts',
  schema: Type.Object({
    TILLPOINT_CONSOLE_BUILD: Type.String({
      defaultText: 'build when changed',
      description:
        '`off`: `serve` does not build the operator console first (the image ships it built, console/dist). Read by bin/tillpoint.mjs.',
    }),
    NODE_OPTIONS: Type.String({
      description:
        "Node's own. When it gives no heap flag (`--max-old-space-size`, `--max-heap-size`, `--heap-growing-percent`), bin/tillpoint.mjs sets `--heap-growing-percent=85` (see Node.js heap below).",
    }),
  }),
  load: () => ({}),
});
