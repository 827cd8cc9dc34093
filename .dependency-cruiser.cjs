// The boundaries of src/, checked by `npm run lint:deps` (part of `npm test`). docs/architecture.md
// explains them; a rule that fires means a boundary moved: fix the import, or change the design
// (and that document) on purpose.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      comment: 'A cycle makes two modules one: invert the dependency or give the shared part its own home.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'platform-knows-no-module',
      comment: 'platform/ is infrastructure every module uses; it must not know any of them.',
      severity: 'error',
      from: { path: '^src/platform/' },
      to: { path: '^src/(modules|http|roles|cli|tools)/|^src/app\\.ts$' },
    },
    {
      name: 'modules-meet-through-index',
      comment: "A module is used through its index.ts only; the rest of its folder is private.",
      severity: 'error',
      from: { path: '^src/modules/([^/]+)/', pathNot: '\\.test\\.ts$' },
      to: { path: '^src/modules/[^/]+/', pathNot: ['^src/modules/$1/', '^src/modules/[^/]+/index\\.ts$'] },
    },
    {
      name: 'outside-meets-modules-through-index',
      comment:
        'The app, roles, CLI, HTTP layer and tools use a module through its index.ts only. The composition roots ' +
        'src/config.ts and src/metrics.ts read a module\'s *.settings.ts and *.metrics.ts directly (its second ' +
        'public face: configuration is read before any module loads).',
      severity: 'error',
      from: { path: '^src/(app\\.ts|config\\.ts|metrics\\.ts|roles/|cli/|http/|tools/)', pathNot: '\\.test\\.ts$' },
      to: {
        path: '^src/modules/[^/]+/',
        pathNot: ['^src/modules/[^/]+/index\\.ts$', '^src/modules/[^/]+/[^/]+\\.(settings|metrics)\\.ts$'],
      },
    },
    {
      name: 'tools-are-not-domain',
      comment:
        'Simulators and SDKs (src/tools) depend on modules, never the reverse. Only the composition ' +
        '(src/app.ts mounts the bank simulator in development; the CLI runs the tools) may start one.',
      severity: 'error',
      from: { path: '^src/(modules|platform|http|roles)/', pathNot: '\\.test\\.ts$' },
      to: { path: '^src/tools/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)node_modules/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.mjs', '.js'] },
  },
};
