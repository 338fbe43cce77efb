/**
 * Deterministic demo data for the local stack: a mobile-money operator's USSD operations, their
 * back-end transactions and the reference tables, written into DuckDB with the contract's schemas.
 *
 * One seeded PRNG (mulberry32) drives everything, so the same options give byte-identical tables.
 * The data carries every case the chain must handle: status updates and settlements arriving as
 * new rows, duplicates, rows that cannot be consolidated (NULL operation_id or source_timestamp),
 * operations without a transaction, amount and status mismatches, unknown services and agents,
 * and late rows, held in the `demo_arrivals` schema until `releaseArrivals` lets them "arrive".
 *
 * Rows are appended (DuckDB Appender) into per-connection staging tables whose timestamps are
 * epoch milliseconds (appending timestamp objects is several times slower), then moved into
 * their tables with one INSERT ... SELECT each. No value is ever spliced into SQL text.
 */
import { DuckDBAppender, DuckDBConnection, DuckDBTimestampTZValue } from '@duckdb/node-api';
import type { RejectedRows } from '../batch';
import type { SchemaField } from '../ports';
import { duckdbCreateTable, duckdbType, loadSchema } from '../schema';

/** What to seed: `operations` operations created in `[start, start + hours]`. */
export interface DemoOptions {
  operations: number;
  start: Date;
  hours: number;
  seed: number;
}

/** 4,000 operations over the morning of 15 January 2026 (UTC, which is also Dakar's time). */
export const DEMO_DEFAULTS: Readonly<DemoOptions> = Object.freeze({
  operations: 4000,
  start: new Date('2026-01-15T06:00:00Z'),
  hours: 4,
  seed: 42,
});

/** What `seedDemoWarehouse` wrote. Row counts include duplicates, rejects and held rows. */
export interface DemoSummary {
  seed: number;
  start: Date;
  end: Date;
  operations: number;
  services: number;
  agents: number;
  ussdRows: number;
  transactionRows: number;
  /** Late rows waiting in `demo_arrivals` (not yet in `main`), per table and in all. */
  held: { ussd: number; transactions: number };
  lateRowsHeld: number;
  /** Extra exact copies of a row. */
  duplicates: { ussd: number; transactions: number };
  /** USSD rows that cannot be consolidated. */
  rejects: RejectedRows;
}

/** Options of one wave of source changes written by `appendChanges`. */
export interface ChangeWaveOptions {
  /** When the wave is written: no timestamp is later. */
  at: Date;
  seed: number;
  newOperations: number;
  /** Status updates of existing operations (INITIATED ones first, then corrections). */
  updates: number;
  /** Settlements of transactions whose latest row is PENDING. */
  settlements: number;
  /** Updates and settlements timestamped up to 10 minutes before `at` (before `since`). */
  lateRows: number;
  /** Exact copies of rows of this wave. */
  duplicates: number;
  /**
   * On-time rows get timestamps in `(since, at]`; pass the last window's end so that only the
   * late rows are late. Default: five minutes before `at`.
   */
  since?: Date;
}

/** What `appendChanges` wrote (counts actually produced: fewer when candidates ran out). */
export interface ChangeWaveSummary {
  since: Date;
  at: Date;
  newOperations: number;
  updates: number;
  settlements: number;
  lateRows: number;
  duplicates: number;
  ussdRows: number;
  transactionRows: number;
}

/** Schema of the source tables (DuckDB's default schema). */
export const SOURCE_SCHEMA = 'main';
/** Schema holding late rows until they arrive. */
export const ARRIVALS_SCHEMA = 'demo_arrivals';
/** A late row arrives at most this long after its timestamp. */
export const MAX_LATENESS_MS = 10 * 60_000;
/** Default span of a wave's on-time rows: `(at - 5 min, at]`. */
export const DEFAULT_WAVE_SPAN_MS = 5 * 60_000;

// ---------------------------------------------------------------------------------------------
// Randomness

/** mulberry32: a small, fast 32-bit PRNG; the same seed gives the same sequence everywhere. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A weight table, prepared once (drawing from it is on the hot path). */
interface Weights<K extends string> {
  keys: K[];
  cumulative: number[];
  total: number;
}

function weights<K extends string>(table: Readonly<Partial<Record<K, number>>>): Weights<K> {
  const keys = Object.keys(table) as K[];
  let total = 0;
  const cumulative = keys.map((k) => (total += table[k] ?? 0));
  return { keys, cumulative, total };
}

class Random {
  private readonly next: () => number;

  constructor(seed: number) {
    this.next = mulberry32(seed);
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  /** One key of a weight table, with probability proportional to its weight. */
  weighted<K extends string>(table: Weights<K>): K {
    const r = this.next() * table.total;
    for (let i = 0; i < table.keys.length; i++) if (r < table.cumulative[i]) return table.keys[i];
    return table.keys[table.keys.length - 1];
  }

  /** Log-uniform in [min, max]: small amounts are frequent, large ones rare. */
  logUniform(min: number, max: number): number {
    return Math.exp(Math.log(min) + this.next() * (Math.log(max) - Math.log(min)));
  }
}

// ---------------------------------------------------------------------------------------------
// The operator's world

type OperationType = 'CASHIN' | 'CASHOUT' | 'TRANSFER' | 'BILL_PAYMENT' | 'AIRTIME';
type UssdStatus = 'INITIATED' | 'SUCCESS' | 'FAILED' | 'TIMEOUT';
type TransactionStatus = 'PENDING' | 'SUCCESSFUL' | 'FAILED' | 'REVERSED';

interface ServiceDef {
  id: string;
  name: string;
  category: string;
  type: OperationType;
  ussdCode: string;
  partner: string;
}

/** The services table (12 rows); a transaction's service_id is its operation's service. */
const SERVICES: readonly ServiceDef[] = [
  { id: 'SV01', name: "Dépôt d'argent", category: 'CASH', type: 'CASHIN', ussdCode: '*144*1#', partner: 'OM' },
  { id: 'SV02', name: "Retrait d'argent", category: 'CASH', type: 'CASHOUT', ussdCode: '*144*2#', partner: 'OM' },
  { id: 'SV03', name: 'Transfert national', category: 'TRANSFER', type: 'TRANSFER', ussdCode: '*144*3*1#', partner: 'OM' },
  { id: 'SV04', name: 'Transfert UEMOA', category: 'TRANSFER', type: 'TRANSFER', ussdCode: '*144*3*2#', partner: 'GIM' },
  { id: 'SV05', name: 'Facture Senelec', category: 'BILL', type: 'BILL_PAYMENT', ussdCode: '*144*4*1#', partner: 'SEN' },
  { id: 'SV06', name: 'Facture SDE', category: 'BILL', type: 'BILL_PAYMENT', ussdCode: '*144*4*2#', partner: 'SDE' },
  { id: 'SV07', name: 'Recharge Woyofal', category: 'BILL', type: 'BILL_PAYMENT', ussdCode: '*144*4*3#', partner: 'WOY' },
  { id: 'SV08', name: 'Abonnement Canal+', category: 'TV', type: 'BILL_PAYMENT', ussdCode: '*144*4*4#', partner: 'CPL' },
  { id: 'SV09', name: 'Péage Rapido', category: 'TRANSPORT', type: 'BILL_PAYMENT', ussdCode: '*144*4*5#', partner: 'RAP' },
  { id: 'SV10', name: 'Crédit téléphonique', category: 'AIRTIME', type: 'AIRTIME', ussdCode: '*144*5*1#', partner: 'OM' },
  { id: 'SV11', name: 'Pass Internet', category: 'AIRTIME', type: 'AIRTIME', ussdCode: '*144*5*2#', partner: 'OM' },
  { id: 'SV12', name: 'Paiement marchand', category: 'MERCHANT', type: 'BILL_PAYMENT', ussdCode: '*144*6#', partner: 'MCH' },
];
/** A retired service: a few transactions reference it, the services table does not have it. */
const UNKNOWN_SERVICE_ID = 'SV99';
/** A deactivated agent: a few operations reference it, the agents table does not have it. */
const UNKNOWN_AGENT_CODE = 'AG9999';
const MAIN_MENU_CODE = '*144#';

const SERVICES_BY_TYPE = new Map<OperationType, ServiceDef[]>(
  (['CASHIN', 'CASHOUT', 'TRANSFER', 'BILL_PAYMENT', 'AIRTIME'] as const).map((t) => [t, SERVICES.filter((s) => s.type === t)]),
);

const OPERATION_MIX = weights<OperationType>({ CASHIN: 22, CASHOUT: 20, TRANSFER: 28, BILL_PAYMENT: 15, AIRTIME: 15 });
const REGIONS = weights({
  Dakar: 40, 'Thiès': 14, 'Saint-Louis': 8, Diourbel: 8, Kaolack: 8, Ziguinchor: 6,
  Louga: 5, Fatick: 4, Kolda: 3, Tambacounda: 2, Matam: 2,
});
const SURNAMES = ['Diop', 'Ndiaye', 'Fall', 'Sow', 'Ba', 'Gueye', 'Diallo', 'Faye', 'Sarr', 'Mbaye', 'Cissé', 'Thiam', 'Seck', 'Ndour', 'Camara', 'Kane', 'Sy', 'Diouf', 'Niang', 'Touré'];
const SHOPS = ['Boutique', 'Kiosque', 'Ets', 'Multiservices', 'Quincaillerie', 'Alimentation', 'Cyber', 'Point Cash'];
const AIRTIME_AMOUNTS = [100, 200, 250, 500, 1000, 2000, 5000, 10000];
/** Senegalese mobile prefixes, weighted by repetition. */
const MOBILE_PREFIXES = ['77', '77', '77', '77', '77', '78', '78', '76', '76', '70', '75'];
const SUBSCRIBERS = 50_000;

/** How often each case happens (per operation unless said otherwise). */
const RATES = {
  noRef: 0.02, // the session ended before a transaction was created: NULL transaction_ref
  orphanRef: 0.015, // a reference with no transaction row ever (MISSING_TRANSACTION)
  abandoned: 0.03, // the USSD row never leaves INITIATED
  correction: 0.02, // a later USSD row corrects the final status
  neverSettles: 0.04, // the transaction stays PENDING
  reversal: 0.01, // a SUCCESSFUL transaction is reversed later
  amountMismatch: 0.02,
  nullTransactionAmount: 0.003,
  unknownService: 0.005,
  unknownAgent: 0.01,
  mainMenu: 0.3, // dialled *144# and navigated the menu
  late: 0.03, // per row: held in demo_arrivals, arrives up to 10 minutes after its timestamp
  duplicate: 0.01, // per row: written twice
  nullOperationId: 0.0015, // per USSD row: an extra copy without operation_id
  nullSourceTimestamp: 0.0015, // per USSD row: an extra copy without source_timestamp
};

const REFERENCE = weights({ none: RATES.noRef, orphan: RATES.orphanRef, normal: 1 - RATES.noRef - RATES.orphanRef });
/** The USSD outcome of a session (without a transaction reference, it cannot succeed). */
const OUTCOME = weights<UssdStatus>({ SUCCESS: 86, FAILED: 7, TIMEOUT: 7 });
const OUTCOME_WITHOUT_REFERENCE = weights<UssdStatus>({ FAILED: 1, TIMEOUT: 1 });
/** How the back end settles, given the USSD outcome (INITIATED: the session was abandoned). */
const SETTLEMENT: Record<UssdStatus, Weights<TransactionStatus>> = {
  SUCCESS: weights<TransactionStatus>({ SUCCESSFUL: 97, FAILED: 2, REVERSED: 1 }),
  FAILED: weights<TransactionStatus>({ SUCCESSFUL: 10, FAILED: 85, REVERSED: 5 }),
  TIMEOUT: weights<TransactionStatus>({ SUCCESSFUL: 25, FAILED: 50, REVERSED: 25 }),
  INITIATED: weights<TransactionStatus>({ SUCCESSFUL: 40, FAILED: 60 }),
};
/** Settlement of a transaction found PENDING by a later wave. */
const LATE_SETTLEMENT = weights<TransactionStatus>({ SUCCESSFUL: 80, FAILED: 15, REVERSED: 5 });

// ---------------------------------------------------------------------------------------------
// Rows: keyed by the schema's column names; timestamps are epoch milliseconds

type Cell = string | number | null;

type UssdRow = {
  operation_id: string | null;
  session_id: string;
  msisdn: string;
  service_code: string;
  operation_type: string;
  amount: number | string | null;
  currency: string;
  status: string;
  transaction_ref: string | null;
  agent_code: string | null;
  created_at: number | null;
  source_timestamp: number | null;
};

type TransactionRow = {
  transaction_id: string;
  service_id: string;
  partner_ref: string;
  amount: number | string | null;
  fees: number | string | null;
  commission: number | string | null;
  status: string;
  updated_at: number;
};

/** Where an operation's generated rows go. */
interface RowSink {
  ussd(row: UssdRow): void;
  transaction(row: TransactionRow): void;
}

const pad10 = (n: number): string => String(n).padStart(10, '0');
const operationId = (n: number): string => `OP${pad10(n)}`;
const transactionId = (n: number): string => `TX${pad10(n)}`;

/** A subscriber's number (2217 and eight digits), the same for the same subscriber index. */
function msisdn(subscriber: number): string {
  const h = mulberry32(subscriber * 2654435761)();
  const prefix = MOBILE_PREFIXES[subscriber % MOBILE_PREFIXES.length];
  return `221${prefix}${String(Math.floor(h * 1e7)).padStart(7, '0')}`;
}

function drawAmount(rng: Random, type: OperationType): number {
  switch (type) {
    case 'CASHIN': return Math.round(rng.logUniform(1_000, 500_000) / 500) * 500;
    case 'CASHOUT': return Math.round(rng.logUniform(1_000, 300_000) / 500) * 500;
    case 'TRANSFER': return Math.round(rng.logUniform(500, 250_000) / 5) * 5;
    case 'BILL_PAYMENT': return Math.round(rng.logUniform(2_000, 100_000));
    case 'AIRTIME': return rng.pick(AIRTIME_AMOUNTS);
  }
}

/** Fees paid by the customer and commission earned by the agent, in whole XOF. */
function pricing(type: OperationType, amount: number): { fees: number; commission: number } {
  switch (type) {
    case 'CASHIN': return { fees: 0, commission: Math.round(amount * 0.004) };
    case 'CASHOUT': {
      const fees = Math.max(50, Math.round(amount * 0.01));
      return { fees, commission: Math.round(fees * 0.4) };
    }
    case 'TRANSFER': return { fees: Math.min(5_000, Math.round(amount * 0.01)), commission: 0 };
    default: return { fees: 0, commission: 0 };
  }
}

/** A settled amount that differs from the USSD one, the way back ends get it wrong. */
function mismatchedAmount(rng: Random, amount: number, fees: number): number {
  switch (rng.int(0, 3)) {
    case 0: return amount + Math.max(fees, 25); // fees included by the partner
    case 1: return amount - 1; // off by one franc
    case 2: return amount + 0.5; // a rounding artefact
    default: return amount * 10; // a typo
  }
}

function pickService(rng: Random): ServiceDef {
  return rng.pick(SERVICES_BY_TYPE.get(rng.weighted(OPERATION_MIX)) as ServiceDef[]);
}

/**
 * One operation's whole life, every row timestamped in `(from, to]` (later events are not
 * written): the INITIATED row, the final status, sometimes a correction; the transaction's
 * PENDING row, its settlement, sometimes a reversal. Timestamps strictly increase per
 * operation and per transaction, so "the latest row" is never a tie between different rows.
 */
function generateOperation(rng: Random, n: number, agents: readonly string[], from: number, to: number, sink: RowSink): void {
  const created = from + rng.int(1, to - from);
  const service = pickService(rng);
  const type = service.type;
  const amount = drawAmount(rng, type);
  const hasAgent = type === 'CASHIN' || type === 'CASHOUT';
  const reference = rng.weighted(REFERENCE);
  const initiated: UssdRow = {
    operation_id: operationId(n),
    session_id: `SES-${rng.int(0, 0xffffffff).toString(16).toUpperCase().padStart(8, '0')}`,
    msisdn: msisdn(rng.int(0, SUBSCRIBERS - 1)),
    service_code: rng.chance(RATES.mainMenu) ? MAIN_MENU_CODE : service.ussdCode,
    operation_type: type,
    amount,
    currency: 'XOF',
    status: 'INITIATED',
    transaction_ref: reference === 'none' ? null : transactionId(n),
    agent_code: hasAgent ? (rng.chance(RATES.unknownAgent) ? UNKNOWN_AGENT_CODE : rng.pick(agents)) : null,
    created_at: created,
    source_timestamp: created,
  };
  sink.ussd(initiated);

  let outcome: UssdStatus = 'INITIATED';
  if (!rng.chance(RATES.abandoned)) {
    outcome = rng.weighted(reference === 'none' ? OUTCOME_WITHOUT_REFERENCE : OUTCOME);
    const finalAt = created + rng.int(2_000, 90_000);
    if (finalAt <= to) sink.ussd({ ...initiated, status: outcome, source_timestamp: finalAt });
    if (rng.chance(RATES.correction)) {
      const correctedAt = finalAt + rng.int(60_000, 30 * 60_000);
      const corrected = rng.pick((['SUCCESS', 'FAILED', 'TIMEOUT'] as const).filter((s) => s !== outcome));
      if (correctedAt <= to) sink.ussd({ ...initiated, status: corrected, source_timestamp: correctedAt });
    }
  }

  if (reference !== 'normal') return;
  const pendingAt = created + rng.int(500, 5_000);
  const { fees, commission } = pricing(type, amount);
  const pending: TransactionRow = {
    transaction_id: transactionId(n),
    service_id: rng.chance(RATES.unknownService) ? UNKNOWN_SERVICE_ID : service.id,
    partner_ref: `${service.partner}-${rng.int(100_000_000, 999_999_999)}`,
    amount,
    fees,
    commission,
    status: 'PENDING',
    updated_at: pendingAt,
  };
  if (pendingAt > to) return;
  sink.transaction(pending);
  if (rng.chance(RATES.neverSettles)) return;

  const settledAt = pendingAt + (rng.chance(0.8) ? rng.int(3_000, 120_000) : rng.int(120_000, 15 * 60_000));
  const status = rng.weighted(SETTLEMENT[outcome]);
  const settledAmount = rng.chance(RATES.amountMismatch)
    ? mismatchedAmount(rng, amount, fees)
    : rng.chance(RATES.nullTransactionAmount) ? null : amount;
  const settled: TransactionRow = { ...pending, status, amount: settledAmount, updated_at: settledAt };
  if (settledAt <= to) sink.transaction(settled);
  if (status === 'SUCCESSFUL' && rng.chance(RATES.reversal)) {
    const reversedAt = settledAt + rng.int(20 * 60_000, 90 * 60_000);
    if (reversedAt <= to) sink.transaction({ ...settled, status: 'REVERSED', updated_at: reversedAt });
  }
}

type AgentRow = { agent_code: string; agent_name: string; region: string };

function generateAgents(rng: Random): AgentRow[] {
  const count = rng.int(30, 60);
  const agents: AgentRow[] = [];
  for (let i = 1; i <= count; i++) {
    agents.push({ agent_code: `AG${String(i).padStart(4, '0')}`, agent_name: `${rng.pick(SHOPS)} ${rng.pick(SURNAMES)}`, region: rng.weighted(REGIONS) });
  }
  return agents;
}

// ---------------------------------------------------------------------------------------------
// Tables

const quoted = (schema: string, table: string): string => `"${schema}"."${table}"`;
const arrivalFields = (fields: SchemaField[]): SchemaField[] => [
  ...fields,
  { name: 'arrives_at', type: 'TIMESTAMP', mode: 'REQUIRED', description: 'When the late row arrives' } as SchemaField,
];

/** Creates the four source tables in `main` and the holding tables in `demo_arrivals`. */
async function createTables(connection: DuckDBConnection): Promise<void> {
  for (const name of ['ussd_operations', 'transactiongu', 'services', 'agents'] as const) {
    await connection.run(duckdbCreateTable(quoted(SOURCE_SCHEMA, name), loadSchema(name)));
  }
  await connection.run(`CREATE SCHEMA IF NOT EXISTS "${ARRIVALS_SCHEMA}"`);
  for (const name of ['ussd_operations', 'transactiongu'] as const) {
    await connection.run(duckdbCreateTable(quoted(ARRIVALS_SCHEMA, name), arrivalFields(loadSchema(name))));
  }
}

function appendCell(appender: DuckDBAppender, value: Cell): void {
  if (value === null) appender.appendNull();
  else if (typeof value === 'number') appender.appendDouble(value);
  else appender.appendVarchar(value);
}

/** The columns of a source table, with timestamps converted back from epoch milliseconds. */
function selectList(fields: SchemaField[]): string {
  return fields
    .map((f) => (f.type === 'TIMESTAMP' ? `make_timestamptz(CAST("${f.name}" AS BIGINT) * 1000) AS "${f.name}"` : `"${f.name}"`))
    .join(', ');
}

/** Appends into a staging table (timestamps as epoch ms), then moves the rows where they belong. */
class StagedTable {
  private rows = 0;

  private constructor(
    private readonly connection: DuckDBConnection,
    private readonly name: 'ussd_operations' | 'transactiongu',
    private readonly fields: SchemaField[],
    private readonly appender: DuckDBAppender,
  ) {}

  static async open(connection: DuckDBConnection, name: 'ussd_operations' | 'transactiongu'): Promise<StagedTable> {
    const fields = loadSchema(name);
    const columns = fields.map((f) => `"${f.name}" ${f.type === 'TIMESTAMP' ? 'DOUBLE' : duckdbType(f.type)}`);
    await connection.run(`CREATE OR REPLACE TEMP TABLE "demo_stage_${name}" (${[...columns, '"arrives_at" DOUBLE'].join(', ')})`);
    return new StagedTable(connection, name, fields, await connection.createAppender(`demo_stage_${name}`, 'main', 'temp'));
  }

  append(row: Readonly<Record<string, Cell>>, arrivesAt: number | null): void {
    for (const field of this.fields) {
      const value = row[field.name];
      if (value === undefined) throw new Error(`The demo generator has no value for ${this.name}.${field.name}`);
      appendCell(this.appender, value);
    }
    appendCell(this.appender, arrivesAt);
    this.appender.endRow();
    this.rows++;
  }

  get count(): number {
    return this.rows;
  }

  /** Moves on-time rows into `main` and late rows into `demo_arrivals`, then drops the stage. */
  async move(): Promise<void> {
    this.appender.closeSync();
    const columns = this.fields.map((f) => `"${f.name}"`).join(', ');
    const stage = `temp.main."demo_stage_${this.name}"`;
    await this.connection.run(
      `INSERT INTO ${quoted(SOURCE_SCHEMA, this.name)} (${columns}) SELECT ${selectList(this.fields)} FROM ${stage} WHERE "arrives_at" IS NULL`,
    );
    await this.connection.run(
      `INSERT INTO ${quoted(ARRIVALS_SCHEMA, this.name)} (${columns}, "arrives_at")
       SELECT ${selectList(this.fields)}, make_timestamptz(CAST("arrives_at" AS BIGINT) * 1000) FROM ${stage} WHERE "arrives_at" IS NOT NULL`,
    );
    await this.connection.run(`DROP TABLE ${stage}`);
  }
}

/** Staging for both fact tables, written in one transaction; `arrivesAt` (epoch ms) marks a late row. */
class StagedWriter {
  private constructor(private readonly ussdStage: StagedTable, private readonly transactionStage: StagedTable) {}

  static async open(connection: DuckDBConnection): Promise<StagedWriter> {
    return new StagedWriter(await StagedTable.open(connection, 'ussd_operations'), await StagedTable.open(connection, 'transactiongu'));
  }

  ussd(row: UssdRow, arrivesAt: number | null = null): void {
    this.ussdStage.append(row, arrivesAt);
  }

  transaction(row: TransactionRow, arrivesAt: number | null = null): void {
    this.transactionStage.append(row, arrivesAt);
  }

  get counts(): { ussd: number; transactions: number } {
    return { ussd: this.ussdStage.count, transactions: this.transactionStage.count };
  }

  async commit(connection: DuckDBConnection): Promise<void> {
    await inTransaction(connection, async () => {
      await this.ussdStage.move();
      await this.transactionStage.move();
    });
  }
}

async function inTransaction(connection: DuckDBConnection, work: () => Promise<void>): Promise<void> {
  await connection.run('BEGIN TRANSACTION');
  try {
    await work();
    await connection.run('COMMIT');
  } catch (error) {
    await connection.run('ROLLBACK');
    throw error;
  }
}

const timestampParam = (date: Date): DuckDBTimestampTZValue => new DuckDBTimestampTZValue(BigInt(date.getTime()) * 1000n);

// ---------------------------------------------------------------------------------------------
// Seeding

/**
 * The seed's row-level accidents on top of the operations' lives: late rows (held until they
 * arrive, never after the end), duplicates, and rejects (copies without operation_id or
 * source_timestamp; never late).
 */
class SeedSink implements RowSink {
  readonly held = { ussd: 0, transactions: 0 };
  readonly duplicates = { ussd: 0, transactions: 0 };
  readonly rejects = { MISSING_OPERATION_ID: 0, MISSING_SOURCE_TIMESTAMP: 0 } satisfies RejectedRows;

  constructor(private readonly rng: Random, private readonly writer: StagedWriter, private readonly end: number) {}

  ussd(row: UssdRow): void {
    const arrivesAt = this.arrival(row.source_timestamp as number);
    if (arrivesAt !== null) this.held.ussd++;
    this.writer.ussd(row, arrivesAt);
    if (this.rng.chance(RATES.duplicate)) {
      this.writer.ussd(row, arrivesAt);
      this.duplicates.ussd++;
      if (arrivesAt !== null) this.held.ussd++;
    }
    if (this.rng.chance(RATES.nullOperationId)) {
      this.writer.ussd({ ...row, operation_id: null });
      this.rejects.MISSING_OPERATION_ID++;
    }
    if (this.rng.chance(RATES.nullSourceTimestamp)) {
      this.writer.ussd({ ...row, source_timestamp: null });
      this.rejects.MISSING_SOURCE_TIMESTAMP++;
    }
  }

  transaction(row: TransactionRow): void {
    const arrivesAt = this.arrival(row.updated_at);
    if (arrivesAt !== null) this.held.transactions++;
    this.writer.transaction(row, arrivesAt);
    if (this.rng.chance(RATES.duplicate)) {
      this.writer.transaction(row, arrivesAt);
      this.duplicates.transactions++;
      if (arrivesAt !== null) this.held.transactions++;
    }
  }

  /** When a late row arrives, or null for a row visible from the start. */
  private arrival(timestamp: number): number | null {
    if (!this.rng.chance(RATES.late)) return null;
    const arrivesAt = Math.min(timestamp + this.rng.int(1_000, MAX_LATENESS_MS), this.end);
    return arrivesAt > timestamp ? arrivesAt : null;
  }
}

function validateDemoOptions(options: DemoOptions): void {
  const problems: string[] = [];
  if (!Number.isInteger(options.operations) || options.operations < 0) problems.push('operations must be an integer >= 0');
  if (!(options.start instanceof Date) || Number.isNaN(options.start.getTime())) problems.push('start must be a valid Date');
  if (!(options.hours > 0)) problems.push('hours must be > 0');
  if (!Number.isInteger(options.seed)) problems.push('seed must be an integer');
  if (problems.length > 0) throw new Error(`Invalid demo options: ${problems.join('; ')}`);
}

/**
 * Creates the source tables (schema `main`) and the holding tables (schema `demo_arrivals`) and
 * fills them with `options.operations` operations. Refuses tables that already hold rows.
 */
export async function seedDemoWarehouse(
  connection: DuckDBConnection,
  options: DemoOptions,
  /** Called every 10,000 operations generated, then once before the rows are written. */
  onProgress?: (progress: { generated: number; total: number; writing: boolean }) => void,
): Promise<DemoSummary> {
  validateDemoOptions(options);
  await createTables(connection);
  const existing = await connection.runAndReadAll(
    `SELECT (SELECT COUNT(*) FROM ${quoted(SOURCE_SCHEMA, 'ussd_operations')}) + (SELECT COUNT(*) FROM ${quoted(SOURCE_SCHEMA, 'transactiongu')})
      + (SELECT COUNT(*) FROM ${quoted(SOURCE_SCHEMA, 'services')}) + (SELECT COUNT(*) FROM ${quoted(SOURCE_SCHEMA, 'agents')}) AS n`,
  );
  if (Number(existing.getRows()[0][0]) > 0) throw new Error('seedDemoWarehouse needs empty source tables: seed a fresh database');

  const rng = new Random(options.seed);
  const start = options.start.getTime();
  const end = start + Math.round(options.hours * 3_600_000);
  const agents = generateAgents(rng);
  const agentCodes = agents.map((a) => a.agent_code);

  const writer = await StagedWriter.open(connection);
  const sink = new SeedSink(rng, writer, end);
  for (let n = 1; n <= options.operations; n++) {
    generateOperation(rng, n, agentCodes, start, end, sink);
    if (n % 10_000 === 0) onProgress?.({ generated: n, total: options.operations, writing: false });
  }
  onProgress?.({ generated: options.operations, total: options.operations, writing: true });

  await appendReferenceRows(connection, 'services', SERVICES.map((s) => ({ service_id: s.id, service_name: s.name, category: s.category })));
  await appendReferenceRows(connection, 'agents', agents);
  await writer.commit(connection);

  const written = writer.counts;
  return {
    seed: options.seed,
    start: new Date(start),
    end: new Date(end),
    operations: options.operations,
    services: SERVICES.length,
    agents: agents.length,
    ussdRows: written.ussd,
    transactionRows: written.transactions,
    held: sink.held,
    lateRowsHeld: sink.held.ussd + sink.held.transactions,
    duplicates: sink.duplicates,
    rejects: sink.rejects,
  };
}

async function appendReferenceRows(connection: DuckDBConnection, table: 'services' | 'agents', rows: Record<string, string>[]): Promise<void> {
  const fields = loadSchema(table);
  const appender = await connection.createAppender(table, SOURCE_SCHEMA);
  for (const row of rows) {
    for (const field of fields) appendCell(appender, row[field.name] ?? null);
    appender.endRow();
  }
  appender.closeSync();
}

// ---------------------------------------------------------------------------------------------
// Arrivals

/**
 * Lets late rows arrive: moves the held rows with `arrives_at <= upTo` into `main` and deletes
 * them from `demo_arrivals`, in one transaction. Returns how many rows arrived per table.
 */
export async function releaseArrivals(connection: DuckDBConnection, upTo: Date): Promise<{ ussd: number; transactions: number }> {
  await createTables(connection);
  const arrived = { ussd: 0, transactions: 0 };
  await inTransaction(connection, async () => {
    arrived.ussd = await releaseTable(connection, 'ussd_operations', upTo);
    arrived.transactions = await releaseTable(connection, 'transactiongu', upTo);
  });
  return arrived;
}

async function releaseTable(connection: DuckDBConnection, name: 'ussd_operations' | 'transactiongu', upTo: Date): Promise<number> {
  const columns = loadSchema(name).map((f) => `"${f.name}"`).join(', ');
  const held = quoted(ARRIVALS_SCHEMA, name);
  const inserted = await connection.run(
    `INSERT INTO ${quoted(SOURCE_SCHEMA, name)} (${columns}) SELECT ${columns} FROM ${held} WHERE "arrives_at" <= $1 ORDER BY "arrives_at"`,
    [timestampParam(upTo)],
  );
  await connection.run(`DELETE FROM ${held} WHERE "arrives_at" <= $1`, [timestampParam(upTo)]);
  return inserted.rowsChanged;
}

// ---------------------------------------------------------------------------------------------
// Waves of changes after a first cycle

/** Rows of this wave, kept in memory (a wave is small) so that duplicates can copy them. */
class WaveCollector implements RowSink {
  readonly ussdRows: UssdRow[] = [];
  readonly transactionRows: TransactionRow[] = [];

  ussd(row: UssdRow): void {
    this.ussdRows.push(row);
  }

  transaction(row: TransactionRow): void {
    this.transactionRows.push(row);
  }
}

/** Source rows as written, whether already arrived or still held. */
function allRows(name: 'ussd_operations' | 'transactiongu'): string {
  const columns = loadSchema(name).map((f) => `"${f.name}"`).join(', ');
  return `SELECT ${columns} FROM ${quoted(SOURCE_SCHEMA, name)} UNION ALL SELECT ${columns} FROM ${quoted(ARRIVALS_SCHEMA, name)}`;
}

/** Columns read back for copying: timestamps as epoch ms, decimals as exact text. */
function readBackList(fields: SchemaField[]): string {
  return fields
    .map((f) => {
      if (f.type === 'TIMESTAMP') return `CAST(epoch_ms("${f.name}") AS DOUBLE) AS "${f.name}"`;
      if (f.type === 'NUMERIC') return `CAST("${f.name}" AS VARCHAR) AS "${f.name}"`;
      return `"${f.name}"`;
    })
    .join(', ');
}

/**
 * The latest row of up to `limit` operations whose latest row is older than `before`, in a
 * seeded pseudo-random order (INITIATED operations first: they are the ones awaiting an update).
 */
async function latestOperations(connection: DuckDBConnection, before: number, limit: number, salt: string): Promise<UssdRow[]> {
  if (limit <= 0) return [];
  const result = await connection.runAndReadAll(
    `WITH latest AS (
       SELECT * FROM (${allRows('ussd_operations')})
       WHERE "operation_id" IS NOT NULL AND "source_timestamp" IS NOT NULL
       QUALIFY ROW_NUMBER() OVER (PARTITION BY "operation_id" ORDER BY "source_timestamp" DESC) = 1
     )
     SELECT ${readBackList(loadSchema('ussd_operations'))} FROM latest
     WHERE "source_timestamp" < $1
     ORDER BY "status" = 'INITIATED' DESC, md5("operation_id" || $2), "operation_id"
     LIMIT CAST($3 AS BIGINT)`,
    [timestampParam(new Date(before)), salt, limit],
  );
  return result.getRowObjectsJS() as unknown as UssdRow[];
}

/** The latest row of up to `limit` transactions still PENDING and older than `before`. */
async function pendingTransactions(connection: DuckDBConnection, before: number, limit: number, salt: string): Promise<TransactionRow[]> {
  if (limit <= 0) return [];
  const result = await connection.runAndReadAll(
    `WITH latest AS (
       SELECT * FROM (${allRows('transactiongu')})
       WHERE "transaction_id" IS NOT NULL AND "updated_at" IS NOT NULL
       QUALIFY ROW_NUMBER() OVER (PARTITION BY "transaction_id" ORDER BY "updated_at" DESC) = 1
     )
     SELECT ${readBackList(loadSchema('transactiongu'))} FROM latest
     WHERE "status" = 'PENDING' AND "updated_at" < $1
     ORDER BY md5("transaction_id" || $2), "transaction_id"
     LIMIT CAST($3 AS BIGINT)`,
    [timestampParam(new Date(before)), salt, limit],
  );
  return result.getRowObjectsJS() as unknown as TransactionRow[];
}

async function nextOperationNumber(connection: DuckDBConnection): Promise<number> {
  const result = await connection.runAndReadAll(
    `SELECT COALESCE(MAX(TRY_CAST(substr("operation_id", 3) AS BIGINT)), 0) FROM (${allRows('ussd_operations')}) WHERE "operation_id" LIKE 'OP%'`,
  );
  return Number(result.getRows()[0][0]) + 1;
}

async function existingAgentCodes(connection: DuckDBConnection): Promise<string[]> {
  const result = await connection.runAndReadAll(
    `SELECT "agent_code" FROM ${quoted(SOURCE_SCHEMA, 'agents')} WHERE "agent_code" IS NOT NULL ORDER BY "agent_code"`,
  );
  const codes = result.getRows().map(([code]) => String(code));
  return codes.length > 0 ? codes : [UNKNOWN_AGENT_CODE];
}

/** The next USSD status of an operation: a final status, or a correction of a final one. */
function nextStatus(rng: Random, current: string): UssdStatus {
  if (current === 'INITIATED') return rng.weighted(OUTCOME);
  return rng.pick((['SUCCESS', 'FAILED', 'TIMEOUT'] as const).filter((s) => s !== current));
}

function validateWaveOptions(options: ChangeWaveOptions): void {
  const problems: string[] = [];
  if (!(options.at instanceof Date) || Number.isNaN(options.at.getTime())) problems.push('at must be a valid Date');
  if (!Number.isInteger(options.seed)) problems.push('seed must be an integer');
  for (const key of ['newOperations', 'updates', 'settlements', 'lateRows', 'duplicates'] as const) {
    if (!Number.isInteger(options[key]) || options[key] < 0) problems.push(`${key} must be an integer >= 0`);
  }
  if (options.since !== undefined && !(options.since.getTime() < options.at.getTime())) problems.push('since must be before at');
  if (problems.length > 0) throw new Error(`Invalid change wave: ${problems.join('; ')}`);
}

/**
 * Writes the next wave of source changes, as if written at `at` (so straight into `main`):
 * new operations (their lives cut at `at`), status updates of existing operations, settlements
 * of PENDING transactions, late rows (updates and settlements timestamped in
 * `[at - 10 min, since)`), and exact duplicates of some of the wave's rows.
 * Every timestamp is <= `at`; on-time ones are > `since`.
 */
export async function appendChanges(connection: DuckDBConnection, options: ChangeWaveOptions): Promise<ChangeWaveSummary> {
  validateWaveOptions(options);
  await createTables(connection);
  const at = options.at.getTime();
  const since = options.since?.getTime() ?? at - DEFAULT_WAVE_SPAN_MS;
  const lateFrom = at - MAX_LATENESS_MS;
  const lateTo = Math.max(lateFrom + 1, Math.min(since, at)); // exclusive
  const rng = new Random(options.seed);
  const wave = new WaveCollector();

  const first = await nextOperationNumber(connection);
  const agents = await existingAgentCodes(connection);
  for (let i = 0; i < options.newOperations; i++) generateOperation(rng, first + i, agents, since, at, wave);

  // Late rows first, so that no operation or transaction gets both a late and an on-time row.
  const lateUssd = Math.ceil(options.lateRows / 2);
  const lateOperations = await latestOperations(connection, lateFrom, lateUssd, `${options.seed}:late`);
  const latePending = await pendingTransactions(connection, lateFrom, options.lateRows - lateOperations.length, `${options.seed}:late`);
  for (const row of lateOperations) wave.ussd({ ...row, status: nextStatus(rng, row.status), source_timestamp: rng.int(lateFrom, lateTo - 1) });
  for (const row of latePending) wave.transaction({ ...row, status: rng.weighted(LATE_SETTLEMENT), updated_at: rng.int(lateFrom, lateTo - 1) });

  const lateIds = new Set<string | null>([...lateOperations.map((r) => r.operation_id), ...latePending.map((r) => r.transaction_id)]);
  const updates = (await latestOperations(connection, at, options.updates + lateOperations.length, `${options.seed}:update`))
    .filter((r) => !lateIds.has(r.operation_id))
    .slice(0, options.updates);
  for (const row of updates) {
    const after = Math.max(row.source_timestamp as number, since);
    wave.ussd({ ...row, status: nextStatus(rng, row.status), source_timestamp: rng.int(after + 1, at) });
  }
  const settlements = (await pendingTransactions(connection, at, options.settlements + latePending.length, `${options.seed}:settle`))
    .filter((r) => !lateIds.has(r.transaction_id))
    .slice(0, options.settlements);
  for (const row of settlements) {
    const after = Math.max(row.updated_at, since);
    wave.transaction({ ...row, status: rng.weighted(LATE_SETTLEMENT), updated_at: rng.int(after + 1, at) });
  }

  const writer = await StagedWriter.open(connection);
  for (const row of wave.ussdRows) writer.ussd(row);
  for (const row of wave.transactionRows) writer.transaction(row);
  const rowsOfWave = wave.ussdRows.length + wave.transactionRows.length;
  let duplicates = 0;
  for (; rowsOfWave > 0 && duplicates < options.duplicates; duplicates++) {
    const i = rng.int(0, rowsOfWave - 1);
    if (i < wave.ussdRows.length) writer.ussd(wave.ussdRows[i]);
    else writer.transaction(wave.transactionRows[i - wave.ussdRows.length]);
  }
  await writer.commit(connection);

  return {
    since: new Date(since),
    at: new Date(at),
    newOperations: options.newOperations,
    updates: updates.length,
    settlements: settlements.length,
    lateRows: lateOperations.length + latePending.length,
    duplicates,
    ussdRows: writer.counts.ussd,
    transactionRows: writer.counts.transactions,
  };
}
