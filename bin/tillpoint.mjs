#!/usr/bin/env node
// Entry point of the `tillpoint` command. TypeScript runs through tsx's loader, so there is no
// build step between a checkout and a running platform.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
