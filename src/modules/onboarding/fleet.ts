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
  /** Also write payments.csv: months of payment history at the fleet's terminals. */
  history?: HistoryOptions;
}

export interface FleetFiles {
  merchants: string;
  stores: string;
  terminals: string;
  rewardBalances: string;
  /** With `history`: the payments file and what it holds. */
  payments?: string;
  history?: HistoryCounts;
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
  const paymentsFile = join(o.dir, 'payments.csv');
  const pOut = o.history
    ? new Out(
        paymentsFile,
        'external_ref,merchant_ref,terminal_ref,store_ref,refund_of,amount_paise,status,created_at,completed_at,payer_vpa,bank_ref,points_earned,points_redeemed',
      )
    : undefined;
  // History has its own generator, so the fleet's files are the same with or without it.
  const history =
    pOut && o.history ? new HistoryWriter(pOut, rng(((o.seed ?? 42) ^ 0x5bd1e995) >>> 0), o.history) : undefined;
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
    const tills: { sref: string; tref: string }[] = [];
    for (let s = 0; s < nStores; s++) {
      const sref = `${mref}-S${s + 1}`;
      await sOut.line(`${sref},${mref},${name} ${pick(AREAS)},${s === 0 ? city : pick(CITIES)}`);
      counts.stores++;
      const nTerms = 1 + Math.floor(r() * maxTerms);
      for (let t = 0; t < nTerms; t++) {
        counts.terminals++;
        tills.push({ sref, tref: `${sref}-T${t + 1}` });
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
    await history?.merchant(m + 1, mref, mcc, tills);
  }
  await Promise.all([mOut.close(), sOut.close(), tOut.close(), bOut.close(), pOut?.close()]);
  return history ? { ...files, counts, payments: paymentsFile, history: history.counts } : { ...files, counts };
}

// Payment history for a generated fleet: months of payments at every terminal, with refunds and
// the points the fleet's coalition program would have given and taken, in Tillpoint's payments
// layout (`tillpoint import payments`). Deterministic for a seed and an end date. Each merchant's
// events are written in time order with their own regular customers, so a customer's points
// are always earned before they are redeemed, in the file as in time.

/** Relative weight of each hour of the day (India time): a morning peak, lunch, and the evening rush. */
const HOUR_WEIGHTS = [
  0.15, 0.08, 0.04, 0.04, 0.05, 0.12, 0.4, 0.8, 1.2, 1.6, 2.0, 2.4, 2.6, 2.2, 1.8, 1.6, 1.8, 2.2, 2.8, 3.2, 3.0, 2.2,
  1.2, 0.5,
];
/** Monday first: weekends are busier at retail counters. */
const WEEKDAY_WEIGHTS = [0.9, 0.9, 0.95, 1.0, 1.1, 1.3, 1.25];
/** Typical basket by MCC: median rupees and spread (log-normal). */
const BASKET: Record<string, [number, number]> = {
  '5411': [180, 0.8],
  '5812': [650, 0.7],
  '5814': [220, 0.6],
  '5912': [340, 0.8],
  '5441': [260, 0.7],
  '5651': [1400, 0.7],
  '5732': [6500, 0.9],
  '5251': [900, 0.9],
  '5541': [1100, 0.5],
  '5942': [450, 0.6],
  '5992': [380, 0.6],
  '7230': [520, 0.6],
  '5499': [90, 0.6],
  '5311': [1500, 0.8],
  '8062': [700, 0.7],
};
const IST_MS = 5.5 * 3_600_000;

export interface HistoryOptions {
  /** Days of history, ending at `end`; default 90. */
  days?: number;
  /** Payments per terminal per day on average; default 3. */
  perTerminalDay?: number;
  /** The end of the history (exclusive); default 00:00 India time today, so a day's runs give the same file. */
  end?: Date;
}

export interface HistoryCounts {
  payments: number;
  succeeded: number;
  refunds: number;
  earned: number;
  redeemed: number;
}

/** One merchant's history, written in time order (its own generator: the fleet files do not change with it). */
class HistoryWriter {
  readonly counts: HistoryCounts = { payments: 0, succeeded: 0, refunds: 0, earned: 0, redeemed: 0 };
  private readonly hourPick = cdf(HOUR_WEIGHTS);
  private rrn = 100_000_000_000;
  private readonly start: number;
  private readonly end: number;
  private readonly days: number;
  private readonly rate: number;
  constructor(
    private readonly out: Out,
    private readonly r: () => number,
    o: HistoryOptions,
  ) {
    this.days = o.days ?? 90;
    this.rate = o.perTerminalDay ?? 3;
    const todayIst = Math.floor((Date.now() + IST_MS) / 86_400_000) * 86_400_000 - IST_MS;
    this.end = o.end?.getTime() ?? todayIst;
    this.start = this.end - this.days * 86_400_000;
  }

  private normal() {
    return Math.sqrt(-2 * Math.log(1 - this.r())) * Math.cos(2 * Math.PI * this.r());
  }

  async merchant(m: number, mref: string, mcc: string, terminals: { sref: string; tref: string }[]) {
    const r = this.r;
    const [median, spread] = BASKET[mcc] ?? [300, 0.7];
    // Regular customers of this merchant: their points are kept per merchant, in time order.
    const customers = Math.max(10, terminals.length * 25);
    const balance = new Map<number, number>();
    type Ev =
      | {
          at: number;
          kind: 'p';
          ref: string;
          t: (typeof terminals)[number];
          amount: number;
          status: string;
          cust: number;
        }
      | { at: number; kind: 'r'; ref: string; of: string; amount: number; status: string };
    const evs: Ev[] = [];
    let seq = 0;
    for (const t of terminals) {
      for (let d = 0; d < this.days; d++) {
        const dayStart = this.start + d * 86_400_000;
        const weekday = (new Date(dayStart + IST_MS).getUTCDay() + 6) % 7;
        // Rounded at random (not to nearest), so a low rate still gives its average.
        const n = Math.floor(this.rate * WEEKDAY_WEIGHTS[weekday] * (0.4 + 1.2 * r()) + r());
        for (let k = 0; k < n; k++) {
          const at = dayStart + this.hourPick(r()) * 3_600_000 + Math.floor(r() * 3_600_000);
          let rupees = Math.max(1, median * Math.exp(spread * this.normal()));
          rupees = r() < 0.7 ? Math.round(rupees) : Math.round(rupees * 100) / 100;
          const amount = Math.max(100, Math.round(rupees * 100));
          const roll = r();
          const status = roll < 0.93 ? 'succeeded' : roll < 0.975 ? 'failed' : 'expired';
          const ref = `${mref}-P${++seq}`;
          evs.push({ at, kind: 'p', ref, t, amount, status, cust: Math.floor(r() * customers) });
          if (status === 'succeeded' && r() < 0.012) {
            const later = at + Math.floor((0.5 + r() * 6) * 86_400_000);
            const full = r() < 0.7;
            const ok = r() < 0.97;
            if (later < this.end)
              evs.push({
                at: later,
                kind: 'r',
                ref: `${mref}-R${++seq}`,
                of: ref,
                amount: full ? amount : Math.max(1, Math.floor(amount / 2)),
                status: ok ? 'succeeded' : 'failed',
              });
          }
        }
      }
    }
    evs.sort((a, b) => a.at - b.at);
    for (const e of evs) {
      const created = new Date(e.at).toISOString();
      if (e.kind === 'r') {
        this.counts.refunds++;
        await this.out.line(`${e.ref},${mref},,,${e.of},${e.amount},${e.status},${created},,,,,`);
        continue;
      }
      this.counts.payments++;
      const vpa = `m${m}c${e.cust}@${HANDLES[e.cust % HANDLES.length]}`;
      let earned = 0;
      let redeemed = 0;
      let bankRef = '';
      let completed = '';
      if (e.status === 'succeeded') {
        this.counts.succeeded++;
        // A fixed few seconds to the bank's answer keeps completion order the same as creation order.
        completed = new Date(e.at + 3_000).toISOString();
        bankRef = String(++this.rrn);
        // The fleet's program: 1 point per ₹10 (rounded down), worth 25 paise; now and then a
        // customer spends some of what they hold.
        const held = balance.get(e.cust) ?? 0;
        if (held >= 100 && r() < 0.08) redeemed = Math.min(held, 50 + Math.floor(r() * 250));
        earned = Math.floor(e.amount / 1000);
        balance.set(e.cust, held - redeemed + earned);
        this.counts.earned += earned;
        this.counts.redeemed += redeemed;
      }
      await this.out.line(
        `${e.ref},${mref},${e.t.tref},${e.t.sref},,${e.amount},${e.status},${created},${completed},${vpa},${bankRef},${earned || ''},${redeemed || ''}`,
      );
    }
  }
}

/** Picks an index by weight from a uniform number in [0, 1). */
function cdf(weights: number[]) {
  const total = weights.reduce((a, b) => a + b, 0);
  const acc: number[] = [];
  let s = 0;
  for (const w of weights) acc.push((s += w / total));
  return (u: number) => {
    const i = acc.findIndex((a) => u < a);
    return i === -1 ? weights.length - 1 : i;
  };
}
