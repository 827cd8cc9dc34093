import { formatRupees } from '../../../platform/money.ts';
import { istDate } from '../calendar.ts';

// Bank bulk-transfer files, as data: which columns, in which order, with which header, how amounts
// and dates are written. A bank's format is a new entry here, not new code. Both shipped formats are
// plain CSV (RFC 4180 quoting); the field names are the ones the writer knows.

export type PayoutField =
  | 'payout_id'
  | 'beneficiary_name'
  | 'beneficiary_account'
  | 'beneficiary_ifsc'
  | 'amount'
  | 'value_date'
  | 'transfer_mode'
  | 'narration'
  | 'merchant_id';

export interface BulkTransferFormat {
  name: string;
  description: string;
  header: boolean;
  columns: { header: string; field: PayoutField }[];
  amount: 'rupees' | 'paise';
  date: 'DD-MM-YYYY' | 'YYYY-MM-DD' | 'DDMMYYYY';
  /** What `transfer_mode` is written as (NEFT, RTGS, IMPS, or the bank's own code). */
  transferMode: string;
  lineEnding: '\r\n' | '\n';
}

export const BULK_TRANSFER_FORMATS: Record<string, BulkTransferFormat> = {
  generic_neft_csv: {
    name: 'generic_neft_csv',
    description: 'Header row, amounts in rupees with two decimals, value date DD-MM-YYYY (IST), NEFT',
    header: true,
    columns: [
      { header: 'Transaction Type', field: 'transfer_mode' },
      { header: 'Beneficiary Account Number', field: 'beneficiary_account' },
      { header: 'IFSC', field: 'beneficiary_ifsc' },
      { header: 'Beneficiary Name', field: 'beneficiary_name' },
      { header: 'Amount', field: 'amount' },
      { header: 'Value Date', field: 'value_date' },
      { header: 'Customer Reference', field: 'payout_id' },
      { header: 'Narration', field: 'narration' },
    ],
    amount: 'rupees',
    date: 'DD-MM-YYYY',
    transferMode: 'NEFT',
    lineEnding: '\r\n',
  },
  simbank_bulk_csv: {
    name: 'simbank_bulk_csv',
    description: 'No header, amounts in paise, value date DDMMYYYY (IST), IMPS; the shape of the bank simulator',
    header: false,
    columns: [
      { header: 'ref', field: 'payout_id' },
      { header: 'account', field: 'beneficiary_account' },
      { header: 'ifsc', field: 'beneficiary_ifsc' },
      { header: 'amount_paise', field: 'amount' },
      { header: 'mode', field: 'transfer_mode' },
      { header: 'date', field: 'value_date' },
      { header: 'name', field: 'beneficiary_name' },
      { header: 'merchant', field: 'merchant_id' },
    ],
    amount: 'paise',
    date: 'DDMMYYYY',
    transferMode: 'IMPS',
    lineEnding: '\n',
  },
};

export interface PayoutLine {
  payoutId: string;
  merchantId: string;
  beneficiaryName: string;
  account: string;
  ifsc: string;
  amountPaise: number;
  valueDate: Date;
  narration: string;
}

/** One CSV field: quoted when needed; a leading = + - @ is defused so a spreadsheet never runs it. */
function csvField(v: string): string {
  const safe = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

function formatDate(at: Date, f: BulkTransferFormat['date']): string {
  const [y, m, d] = istDate(at).split('-');
  return f === 'YYYY-MM-DD' ? `${y}-${m}-${d}` : f === 'DD-MM-YYYY' ? `${d}-${m}-${y}` : `${d}${m}${y}`;
}

export function renderBatch(format: BulkTransferFormat, lines: PayoutLine[]): string {
  const value = (l: PayoutLine, field: PayoutField): string => {
    switch (field) {
      case 'payout_id':
        return l.payoutId;
      case 'merchant_id':
        return l.merchantId;
      case 'beneficiary_name':
        return l.beneficiaryName;
      case 'beneficiary_account':
        return l.account;
      case 'beneficiary_ifsc':
        return l.ifsc;
      case 'amount':
        return format.amount === 'paise' ? String(l.amountPaise) : formatRupees(l.amountPaise);
      case 'value_date':
        return formatDate(l.valueDate, format.date);
      case 'transfer_mode':
        return format.transferMode;
      case 'narration':
        return l.narration;
    }
  };
  const rows: string[] = [];
  if (format.header) rows.push(format.columns.map((c) => csvField(c.header)).join(','));
  for (const l of lines) rows.push(format.columns.map((c) => csvField(value(l, c.field))).join(','));
  return rows.join(format.lineEnding) + format.lineEnding;
}
