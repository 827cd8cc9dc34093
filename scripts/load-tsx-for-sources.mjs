// Preloaded into each test file's process by `node scripts/run-tests.mjs`: a test file given as
// TypeScript source (TEST_TSX=1, or a file the runner does not compile because it imports modules
// by a path computed at run time) gets tsx's loader, exactly what `--import tsx` gave every file
// before; a compiled file (.mjs) runs without it (docs/testing.md, "Compiled once per run").
if (/\.[cm]?tsx?$/.test(process.argv[1] ?? '')) await import('tsx');
