import type { Command } from '../command.ts';
import { serve } from './serve.ts';
import { pki } from './pki.ts';
import { terminals } from './terminals.ts';
import { migrate } from './migrate.ts';
import { ledger } from './ledger.ts';
import { rewards } from './rewards.ts';
import { bankSim } from './bankSim.ts';
import { banks } from './banks.ts';
import { apiKeys } from './apiKeys.ts';
import { audit } from './audit.ts';
import { access } from './access.ts';
import { operators } from './operators.ts';
import { gateway } from './gateway.ts';
import { keys } from './keys.ts';
import { compliance } from './compliance.ts';
import { settle } from './settle.ts';
import { payouts } from './payouts.ts';
import { recon } from './recon.ts';
import { importCommand } from './import.ts';

// Every `tillpoint` subcommand. Add a new one in its own file and list it here.
export const COMMANDS: Command[] = [
  serve,
  migrate,
  ledger,
  rewards,
  bankSim,
  banks,
  apiKeys,
  gateway,
  pki,
  terminals,
  keys,
  audit,
  access,
  operators,
  compliance,
  settle,
  payouts,
  recon,
  importCommand,
];
