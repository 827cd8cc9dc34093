// Types of console/build.mjs for the TypeScript that imports it (bin, tests, bench).
export declare const distDir: string;
export declare function sourceHash(): string;
export declare function ensureConsoleBuilt(opts?: { log?: (message: string) => void; force?: boolean }): Promise<'fresh' | 'built'>;
