import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';

// A realistic fleet as import files in Tillpoint's own layout: merchants across MCCs, cities and
// both simulated acquiring banks (most with a settlement account), 1-6 stores each (about 2.9 on
// average, the seed fintech's 450,000 points for 153,000 merchants), a terminal or two per store,
// and customers' reward balances. Deterministic for a given seed, written as a stream (memory
// does not grow with the fleet). `npm run seed:fleet` and bench/import.ts import these files
// through the same path as `tillpoint import`.

const MCCS: [string, string][] = [
  ['5411', 'Kirana'],
  ['5812', 'Restaurant'],
  ['5814', 'Cafe'],
  ['5912', 'Pharmacy'],
  ['5441', 'Sweets'],
  ['5651', 'Garments'],
  ['5732', 'Electronics'],
  ['5251', 'Hardware'],
  ['5541', 'Fuel Station'],
  ['5942', 'Books'],
  ['5992', 'Florist'],
  ['7230', 'Salon'],
  ['5499', 'Dairy'],
  ['5311', 'Department Store'],
  ['8062', 'Clinic'],
];
const CITIES = [
  'Bengaluru',
  'Mumbai',
  'Delhi',
  'Chennai',
  'Hyderabad',
  'Pune',
  'Kolkata',
  'Ahmedabad',
  'Jaipur',
  'Lucknow',
  'Kochi',
  'Indore',
  'Chandigarh',
  'Coimbatore',
  'Nagpur',
  'Bhubaneswar',
  'Visakhapatnam',
  'Surat',
  'Mysuru',
  'Guwahati',
];
const NAMES = [
  'Sri Lakshmi',
  'Ganesh',
  'Annapurna',
  'Balaji',
  'New India',
  'Royal',
  'Sai Krishna',
  'Om',
  'Shree Ram',
  'Vijaya',
  'Green Leaf',
  'Metro',
  'Sunrise',
  'Apna',
  'Hari Om',
  'Janata',
];
const AREAS = ['Main Road', 'Market', 'Station Road', 'MG Road', 'Bus Stand', 'Temple Street', 'Nagar', 'Circle'];
const IFSC_BANKS = ['HDFC', 'ICIC', 'SBIN', 'UTIB', 'KKBK', 'PUNB', 'BARB', 'CNRB'];
const HANDLES = ['okaxis', 'okhdfcbank', 'okicici', 'oksbi', 'ybl', 'paytm'];
const ACQUIRERS = ['SIMBANK', 'SIMBANK2'];

/** mulberry32: a small, fast, seedable generator (the fleet is the same for the same seed). */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FleetOptions {
  dir: string;
  merchants: number;
  /** Stores per merchant on average (1 to 2×avg-1); default 2.94 (450k / 153k). */
  storesPerMerchant?: number;
  /** Terminals per store on average; default 1. */
  terminalsPerStore?: number;
  /** Reward balances in all; default 2 per store. */
  balances?: number;
  seed?: number;
  /** Share of merchants with a settlement account; default 0.7. */
  settlementShare?: number;
}

export interface FleetFiles {
  merchants: string;
  stores: string;
  terminals: string;
  rewardBalances: string;
  counts: { merchants: number; stores: number; terminals: number; balances: number };
}

class Out {
  private s: WriteStream;
  private buf: string[] = [];
  constructor(path: string, header: string) {
    this.s = createWriteStream(path);
    this.buf.push(header);
  }
  async line(l: string) {
    this.buf.push(l);
    if (this.buf.length >= 2000) await this.flush();
  }
  async flush() {
    if (this.buf.length === 0) return;
    const ok = this.s.write(`${this.buf.join('\n')}\n`);
    this.buf = [];
    if (!ok) await once(this.s, 'drain');
  }
  async close() {
    await this.flush();
    this.s.end();
    await once(this.s, 'finish');
  }
}

/** Writes the four files; returns their paths and counts. */
export async function writeFleet(o: FleetOptions): Promise<FleetFiles> {
  const r = rng(o.seed ?? 42);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)];
  const spm = o.storesPerMerchant ?? 2.94;
  const tps = o.terminalsPerStore ?? 1;
  const files = {
    merchants: join(o.dir, 'merchants.csv'),
    stores: join(o.dir, 'stores.csv'),
    terminals: join(o.dir, 'terminals.csv'),
    rewardBalances: join(o.dir, 'reward-balances.csv'),
  };
  const mOut = new Out(
    files.merchants,
    'external_ref,name,vpa,mcc,acquiring_bank,settlement_account_number,settlement_ifsc',
  );
  const sOut = new Out(files.stores, 'external_ref,merchant_ref,name,city');
  const tOut = new Out(files.terminals, 'external_ref,merchant_ref,store_ref,label,serial');
  const bOut = new Out(files.rewardBalances, 'external_ref,merchant_ref,vpa,phone,points,expires_at');
  const counts = { merchants: 0, stores: 0, terminals: 0, balances: 0 };
  // Stores and terminals per merchant are uniform around the averages asked for.
  const maxStores = Math.max(1, Math.round(2 * spm - 1));
  const maxTerms = Math.max(1, Math.round(2 * tps - 1));
  const storesExpected = o.merchants * ((1 + maxStores) / 2);
  const perStore = (o.balances ?? storesExpected * 2) / storesExpected;
  let balanceDebt = 0;
  const year = new Date().getUTCFullYear();
  for (let m = 0; m < o.merchants; m++) {
    const [mcc, trade] = pick(MCCS);
    const city = pick(CITIES);
    const mref = `FM-${String(m + 1).padStart(7, '0')}`;
    const name = `${pick(NAMES)} ${trade}`;
    const vpa = `fm${m + 1}.${trade.toLowerCase().replace(/[^a-z]/g, '')}@${pick(['simbank', 'simbank2'])}`;
    const settle = r() < (o.settlementShare ?? 0.7);
    const account = settle ? String(10_000_000_000 + Math.floor(r() * 89_999_999_999)) : '';
    const ifsc = settle ? `${pick(IFSC_BANKS)}0${String(Math.floor(r() * 999_999)).padStart(6, '0')}` : '';
    await mOut.line(`${mref},${name},${vpa},${mcc},${pick(ACQUIRERS)},${account},${ifsc}`);
    counts.merchants++;
    // Uniform from 1 to 2×avg−1: the average is the one asked for.
    const nStores = 1 + Math.floor(r() * maxStores);
    for (let s = 0; s < nStores; s++) {
      const sref = `${mref}-S${s + 1}`;
      await sOut.line(`${sref},${mref},${name} ${pick(AREAS)},${s === 0 ? city : pick(CITIES)}`);
      counts.stores++;
      const nTerms = 1 + Math.floor(r() * maxTerms);
      for (let t = 0; t < nTerms; t++) {
        counts.terminals++;
        await tOut.line(
          `${sref}-T${t + 1},${mref},${sref},Till ${t + 1},FT${String(counts.terminals).padStart(9, '0')}`,
        );
      }
      // Balances follow the stores (customers shop near them), spread to hit the target.
      balanceDebt += perStore;
      while (balanceDebt >= 1) {
        balanceDebt -= 1;
        counts.balances++;
        const byPhone = r() < 0.3;
        const who = byPhone
          ? `,${6_000_000_000 + Math.floor(r() * 3_999_999_999)}`
          : `cust${counts.balances}@${pick(HANDLES)},`;
        const points = 10 + Math.floor(r() * 4990);
        const expiry = `${year + 1 + Math.floor(r() * 2)}-${String(1 + Math.floor(r() * 12)).padStart(2, '0')}-28`;
        await bOut.line(`FB-${counts.balances},${mref},${who},${points},${expiry}`);
      }
    }
  }
  await Promise.all([mOut.close(), sOut.close(), tOut.close(), bOut.close()]);
  return { ...files, counts };
}
