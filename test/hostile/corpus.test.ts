/**
 * The hostile-data corpus: source rows of every class the data contract leaves open or that no
 * sane producer writes, run through the whole chain on the local stack over two cycles. Each row
 * must end consolidated exactly once (equal to the from-scratch oracle) or quarantined once with
 * its reason; no bad row may block its batch, reach a chunk message or the MERGE; the counts the
 * cycles report must equal what the quarantine table holds (design invariant 7).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../shared/config';
import { JsonLogger } from '../../shared/logger';
import { runCycle, type CycleReport } from '../../shared/local/cycle';
import { DuckDbWarehouse } from '../../shared/local/duckdb-warehouse';
import { LocalStack, StackClock } from '../../shared/local/stack';
import { BLANK, MAX_ID_LENGTH, codePoints, type RejectReason } from '../../shared/rejects';
import { duckdbType, loadSchema, type SchemaName } from '../../shared/schema';
import { compareConsolidated, countByReason, expectedConsolidation, expectedRejects } from '../support/oracle';
import { quarantineCounts } from '../support/quarantine';

const T0 = Date.parse('2026-04-01T08:00:00Z');
const at = (minutes: number) => new Date(T0 + minutes * 60_000).toISOString();

type Values = Record<string, string | null>;
const ussd = (operation_id: string | null, source_timestamp: string | null, extra: Values = {}): Values => ({
  operation_id,
  session_id: 'S-1',
  msisdn: '221770000001',
  service_code: '*144#',
  operation_type: 'TRANSFER',
  amount: '1000',
  currency: 'XOF',
  status: 'SUCCESS',
  transaction_ref: null,
  agent_code: 'AG-1',
  created_at: source_timestamp,
  source_timestamp,
  ...extra,
});
const transaction = (transaction_id: string | null, updated_at: string | null, extra: Values = {}): Values => ({
  transaction_id,
  service_id: 'SV-1',
  partner_ref: 'P-1',
  amount: '1000',
  fees: '10',
  commission: '1',
  status: 'SUCCESSFUL',
  updated_at,
  ...extra,
});

/** One class of hostile input: its rows, in which cycle they appear, and where each must end. */
interface HostileCase {
  name: string;
  cycle: 1 | 2;
  ussd?: Values[];
  transactions?: Values[];
  services?: Values[];
  agents?: Values[];
  /** Rows that must be in the quarantine: reason, the ID as stored and, for a USSD row, its created_at. */
  quarantined?: { reason: RejectReason; table?: 'ussd_operations' | 'transactiongu'; id: string | null; at?: string | null }[];
  /** Operations that must be consolidated, with the columns that show the rule applied. */
  consolidated?: Record<string, Values>;
}

const LONG_ID = 'L'.repeat(MAX_ID_LENGTH + 1);
const LONGEST_ID = 'é'.repeat(MAX_ID_LENGTH);

const CASES: HostileCase[] = [
  { name: 'a good row (control)', cycle: 1, ussd: [ussd('H-GOOD', at(5))], consolidated: { 'H-GOOD': { ussd_status: 'SUCCESS' } } },
  { name: 'NULL operation_id', cycle: 1, ussd: [ussd(null, at(6))], quarantined: [{ reason: 'MISSING_OPERATION_ID', id: null, at: at(6) }] },
  { name: 'empty operation_id', cycle: 1, ussd: [ussd('', at(7))], quarantined: [{ reason: 'MISSING_OPERATION_ID', id: '', at: at(7) }] },
  { name: 'spaces-only operation_id', cycle: 1, ussd: [ussd('   ', at(8))], quarantined: [{ reason: 'MISSING_OPERATION_ID', id: '   ', at: at(8) }] },
  { name: 'tab and newline operation_id', cycle: 1, ussd: [ussd('\t\n\r\v', at(9))], quarantined: [{ reason: 'MISSING_OPERATION_ID', id: '\t\n\r\v', at: at(9) }] },
  { name: 'Unicode blank operation_id (no-break space, ideographic space, zero-width space, BOM)', cycle: 1, ussd: [ussd('\u00a0\u3000\u200b\ufeff', at(10))], quarantined: [{ reason: 'MISSING_OPERATION_ID', id: '\u00a0\u3000\u200b\ufeff', at: at(10) }] },
  { name: `operation_id of ${MAX_ID_LENGTH + 1} characters`, cycle: 1, ussd: [ussd(LONG_ID, at(11))], quarantined: [{ reason: 'OPERATION_ID_TOO_LONG', id: LONG_ID, at: at(11) }] },
  { name: `operation_id of exactly ${MAX_ID_LENGTH} two-byte characters`, cycle: 1, ussd: [ussd(LONGEST_ID, at(12))], consolidated: { [LONGEST_ID]: {} } },
  { name: 'Unicode operation_id (accents, an emoji)', cycle: 1, ussd: [ussd('H-ÜNÏCØDÉ-😀', at(13))], consolidated: { 'H-ÜNÏCØDÉ-😀': {} } },
  { name: 'operation_id with surrounding spaces: kept as stored', cycle: 1, ussd: [ussd(' H-SPACED ', at(14))], consolidated: { ' H-SPACED ': {} } },
  {
    name: 'NULL source_timestamp (placed by created_at)',
    cycle: 1,
    ussd: [ussd('H-NO-TS', null, { created_at: at(15) })],
    quarantined: [{ reason: 'MISSING_SOURCE_TIMESTAMP', id: 'H-NO-TS', at: at(15) }],
  },
  {
    name: 'NULL created_at, in the same chunk as good rows (used to fail every MERGE)',
    cycle: 1,
    ussd: [ussd('H-NO-CREATED', at(16), { created_at: null })],
    quarantined: [{ reason: 'MISSING_CREATED_AT', id: 'H-NO-CREATED', at: null }],
  },
  {
    name: 'source_timestamp far in the future',
    cycle: 1,
    ussd: [ussd('H-FUTURE', '2999-01-01T00:00:00.000Z', { created_at: at(17) })],
    quarantined: [{ reason: 'TIMESTAMP_OUT_OF_RANGE', id: 'H-FUTURE', at: at(17) }],
  },
  {
    name: 'source_timestamp before 1970',
    cycle: 1,
    ussd: [ussd('H-PRE-1970', '1969-12-31T23:59:59.000Z', { created_at: at(18) })],
    quarantined: [{ reason: 'TIMESTAMP_OUT_OF_RANGE', id: 'H-PRE-1970', at: at(18) }],
  },
  {
    name: 'created_at before 1970',
    cycle: 1,
    ussd: [ussd('H-OLD-CREATED', at(19), { created_at: '1950-06-01T00:00:00.000Z' })],
    quarantined: [{ reason: 'TIMESTAMP_OUT_OF_RANGE', id: 'H-OLD-CREATED', at: '1950-06-01T00:00:00.000Z' }],
  },
  {
    name: 'neither source_timestamp nor created_at (no time at all: seen by every window, kept once)',
    cycle: 1,
    ussd: [ussd('H-TIMELESS', null, { created_at: null })],
    quarantined: [{ reason: 'MISSING_SOURCE_TIMESTAMP', id: 'H-TIMELESS', at: null }],
  },
  { name: 'created_at after source_timestamp: consolidated as it is', cycle: 1, ussd: [ussd('H-CREATED-LATER', at(20), { created_at: at(25) })], consolidated: { 'H-CREATED-LATER': { created_at: at(25) } } },
  {
    name: 'a newer version with NULL created_at: the older good version stays consolidated',
    cycle: 1,
    ussd: [ussd('H-NEWER-BAD', at(21), { status: 'INITIATED' }), ussd('H-NEWER-BAD', at(22), { created_at: null, status: 'SUCCESS' })],
    quarantined: [{ reason: 'MISSING_CREATED_AT', id: 'H-NEWER-BAD', at: null }],
    consolidated: { 'H-NEWER-BAD': { ussd_status: 'INITIATED' } },
  },
  {
    name: 'versions tied in source_timestamp with different statuses: the status furthest along wins',
    cycle: 1,
    ussd: [ussd('H-TIE-STATUS', at(23), { status: 'INITIATED' }), ussd('H-TIE-STATUS', at(23), { status: 'FAILED' }), ussd('H-TIE-STATUS', at(23), { status: 'SUCCESS' })],
    consolidated: { 'H-TIE-STATUS': { ussd_status: 'SUCCESS' } },
  },
  {
    name: 'versions tied in source_timestamp and status: the greatest values win',
    cycle: 1,
    ussd: [ussd('H-TIE-VALUE', at(24), { amount: '100' }), ussd('H-TIE-VALUE', at(24), { amount: '200' }), ussd('H-TIE-VALUE', at(24), { amount: null })],
    consolidated: { 'H-TIE-VALUE': { amount: '200' } },
  },
  { name: 'exact duplicate rows', cycle: 1, ussd: [ussd('H-DUP', at(26)), ussd('H-DUP', at(26))], consolidated: { 'H-DUP': {} } },
  {
    name: 'created_at differs between versions: the earliest is kept',
    cycle: 1,
    ussd: [ussd('H-CREATED', at(27), { created_at: at(1) }), ussd('H-CREATED', at(28), { created_at: at(20) }), ussd('H-CREATED-MOVE', at(28))],
    consolidated: { 'H-CREATED': { created_at: at(1) } },
  },
  {
    name: 'a transaction whose only row has no updated_at: quarantined, the operation MISSING_TRANSACTION',
    cycle: 1,
    ussd: [ussd('H-TX-NOUPD', at(29), { transaction_ref: 'TX-NOUPD' })],
    transactions: [transaction('TX-NOUPD', null)],
    quarantined: [{ reason: 'TRANSACTION_WITHOUT_UPDATED_AT', table: 'transactiongu', id: 'TX-NOUPD' }],
    consolidated: { 'H-TX-NOUPD': { reconciliation_status: 'MISSING_TRANSACTION', transaction_ref: 'TX-NOUPD' } },
  },
  { name: 'a transaction with NULL transaction_id', cycle: 1, transactions: [transaction(null, at(30))], quarantined: [{ reason: 'MISSING_TRANSACTION_ID', table: 'transactiongu', id: null }] },
  {
    name: 'a blank transaction_id, referenced by an operation with the same blank reference',
    cycle: 1,
    ussd: [ussd('H-BLANK-REF', at(31), { transaction_ref: '  ' })],
    transactions: [transaction('  ', at(31))],
    quarantined: [{ reason: 'MISSING_TRANSACTION_ID', table: 'transactiongu', id: '  ' }],
    consolidated: { 'H-BLANK-REF': { reconciliation_status: 'MISSING_TRANSACTION', transaction_id: null } },
  },
  {
    name: 'a transaction row updated far in the future (no sane time: seen by every window, kept once)',
    cycle: 1,
    ussd: [ussd('H-TX-FUTURE', at(32), { transaction_ref: 'TX-FUTURE' })],
    transactions: [transaction('TX-FUTURE', at(32), { status: 'PENDING' }), transaction('TX-FUTURE', '2999-01-01T00:00:00.000Z', { status: 'REVERSED' })],
    quarantined: [{ reason: 'TIMESTAMP_OUT_OF_RANGE', table: 'transactiongu', id: 'TX-FUTURE' }],
    consolidated: { 'H-TX-FUTURE': { transaction_status: 'PENDING' } },
  },
  {
    name: 'transaction rows tied in updated_at: the status furthest along wins',
    cycle: 1,
    ussd: [ussd('H-TX-TIE', at(33), { transaction_ref: 'TX-TIE' })],
    transactions: [transaction('TX-TIE', at(34), { status: 'PENDING' }), transaction('TX-TIE', at(34), { status: 'SUCCESSFUL' })],
    consolidated: { 'H-TX-TIE': { transaction_status: 'SUCCESSFUL', reconciliation_status: 'MATCHED' } },
  },
  {
    name: 'a service_id and an agent_code repeated in the reference tables: the greatest values win',
    cycle: 1,
    ussd: [ussd('H-REF-DUP', at(35), { transaction_ref: 'TX-REF-DUP', agent_code: 'AG-DUP' })],
    transactions: [transaction('TX-REF-DUP', at(35), { service_id: 'SV-DUP' })],
    services: [{ service_id: 'SV-DUP', service_name: 'Alpha', category: 'A' }, { service_id: 'SV-DUP', service_name: 'Beta', category: 'B' }],
    agents: [{ agent_code: 'AG-DUP', agent_name: 'Kiosque A', region: 'Dakar' }, { agent_code: 'AG-DUP', agent_name: 'Kiosque B', region: 'Thiès' }],
    consolidated: { 'H-REF-DUP': { service_name: 'Beta', service_id: 'SV-DUP', agent_name: 'Kiosque B', agent_code: 'AG-DUP' } },
  },
  {
    name: 'second cycle: a newer version with NULL created_at for an operation already consolidated',
    cycle: 2,
    ussd: [ussd('H-GOOD', at(65), { created_at: null, status: 'FAILED' })],
    quarantined: [{ reason: 'MISSING_CREATED_AT', id: 'H-GOOD', at: null }],
    consolidated: { 'H-GOOD': { ussd_status: 'SUCCESS' } },
  },
  {
    name: 'second cycle: a newer version created a day earlier moves the row to that day, without doubling it',
    cycle: 2,
    ussd: [ussd('H-CREATED-MOVE', at(66), { created_at: '2026-03-31T20:00:00.000Z' })],
    consolidated: { 'H-CREATED-MOVE': { created_at: '2026-03-31T20:00:00.000Z' } },
  },
];

const CYCLE_CLOCKS = [new Date(T0 + 42 * 60_000), new Date(T0 + 82 * 60_000)];

describe('hostile-data corpus: each row consolidated exactly once or quarantined with its reason', function () {
  this.timeout(120_000);
  let dir: string;
  let config: Config;
  let stack: LocalStack;
  const reports: CycleReport[] = [];
  const publishedIds: string[] = [];
  const logs: { severity: string; message: string; duplicateReferenceKeys?: unknown }[] = [];

  async function insert(table: SchemaName, rows: Values[] | undefined): Promise<void> {
    const fields = loadSchema(table);
    const values = fields.map((f, i) => `CAST($${i + 1} AS ${duckdbType(f.type)})`).join(', ');
    const connection = await stack.warehouse.connect();
    try {
      for (const row of rows ?? []) await connection.run(`INSERT INTO "main"."${table}" VALUES (${values})`, fields.map((f) => row[f.name] ?? null));
    } finally {
      connection.closeSync();
    }
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hostile-'));
    const file = join(dir, 'warehouse.duckdb');
    const setup = await DuckDbWarehouse.open(file);
    for (const table of ['ussd_operations', 'transactiongu', 'services', 'agents'] as const) await setup.ensureTable({ dataset: 'main', table }, loadSchema(table));
    await setup.close();
    config = loadConfig({ STATE_DIR: join(dir, 'state'), CHUNK_SIZE: '5', LOOKBACK: '15m', SAFETY_LAG: '2m' });
    stack = await LocalStack.start({ config, warehouseFile: file, logger: new JsonLogger((line) => logs.push(JSON.parse(line))), clock: new StackClock() });
    await stack.store.create(config.watermarkObject, new Date(T0).toISOString());
    await insert('services', [{ service_id: 'SV-1', service_name: 'Transfert', category: 'TRANSFER' }]);
    await insert('agents', [{ agent_code: 'AG-1', agent_name: 'Kiosque', region: 'Dakar' }]);
    stack.bus.events.on('published', (event: { topic: string; data: unknown }) => {
      const data = event.data as { type?: string; ids?: string[] } | undefined;
      if (event.topic === config.idsTopic && data?.type === 'chunk') publishedIds.push(...(data.ids ?? []));
    });
  });

  after(async () => {
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [index, clock] of CYCLE_CLOCKS.entries()) {
    const cycle = (index + 1) as 1 | 2;
    it(`cycle ${cycle}: the batch merges and consolidated_table equals the from-scratch oracle`, async () => {
      for (const c of CASES.filter((k) => k.cycle === cycle)) {
        await insert('ussd_operations', c.ussd);
        await insert('transactiongu', c.transactions);
        await insert('services', c.services);
        await insert('agents', c.agents);
      }
      stack.clock.set(clock);
      const report = await runCycle(stack, { quietMs: 2_000 });
      reports.push(report);
      assert.equal(report.ok, true, report.error);
      assert.equal(report.state?.status, 'MERGED', 'no row blocks the batch');
      const windowEnd = new Date(clock.getTime() - config.safetyLagMs);
      const connection = await stack.warehouse.connect();
      try {
        const diff = await compareConsolidated(connection, '"consolidated_dataset"."consolidated_table"', await expectedConsolidation(connection, windowEnd));
        assert.deepEqual({ missing: diff.missing, unexpected: diff.unexpected, duplicated: diff.duplicated, different: diff.different }, { missing: [], unexpected: [], duplicated: [], different: [] });
        // The quarantine holds exactly the oracle's rejects so far, each once.
        const expected = await expectedRejects(connection, new Date(T0 - config.lookbackMs), windowEnd);
        const stored = await stack.warehouse.query({
          sql: 'SELECT source_table, reason, COALESCE(operation_id, transaction_id) AS id, COUNT(*) AS n FROM "consolidated_dataset"."quarantine" GROUP BY ALL',
          params: {},
        });
        const key = (r: { source_table: unknown; reason: unknown; id: unknown }) => `${String(r.source_table)}|${String(r.reason)}|${JSON.stringify(r.id)}`;
        const storedKeys = stored.rows.flatMap((r) => Array.from({ length: Number(r.n) }, () => key(r as never))).sort();
        assert.deepEqual(storedKeys, expected.map((e) => key(e)).sort());
      } finally {
        connection.closeSync();
      }
    });
  }

  for (const c of CASES) {
    it(`${c.name}: ${[c.quarantined?.length ? `quarantined (${[...new Set(c.quarantined.map((q) => q.reason))].join(', ')})` : '', c.consolidated ? 'consolidated as the rule says' : ''].filter(Boolean).join(', ')}`, async () => {
      for (const q of c.quarantined ?? []) {
        const table = q.table ?? 'ussd_operations';
        const column = table === 'ussd_operations' ? 'operation_id' : 'transaction_id';
        const { rows } = await stack.warehouse.query({
          sql: `SELECT reason, created_at, batch_id FROM "consolidated_dataset"."quarantine" WHERE source_table = $t AND ${column} IS NOT DISTINCT FROM CAST($id AS VARCHAR) AND reason = $reason`,
          params: { t: { type: 'STRING', value: table }, id: { type: 'STRING', value: q.id }, reason: { type: 'STRING', value: q.reason } },
        });
        // Rows without an ID are told apart by their created_at.
        const matching = q.at === undefined ? rows : rows.filter((r) => r.created_at === q.at);
        assert.equal(matching.length, 1, `${table} row ${JSON.stringify(q.id)} quarantined once as ${q.reason}: ${JSON.stringify(rows)}`);
        assert.match(String(matching[0].batch_id), /^\d{8}T\d{6}Z-[0-9a-f]{6}$/, 'names the run that first saw it');
      }
      for (const [operationId, columns] of Object.entries(c.consolidated ?? {})) {
        const { rows } = await stack.warehouse.query({
          sql: 'SELECT * FROM "consolidated_dataset"."consolidated_table" WHERE operation_id = CAST($id AS VARCHAR)',
          params: { id: { type: 'STRING', value: operationId } },
        });
        assert.equal(rows.length, 1, `${JSON.stringify(operationId)} consolidated exactly once`);
        for (const [column, value] of Object.entries(columns)) {
          const actual = rows[0][column];
          assert.equal(actual === null ? null : column === 'amount' ? String(Number(actual)) : String(actual), value, `${operationId}.${column}`);
        }
      }
    });
  }

  it('no rejected row reached a chunk message: every published ID is non-blank and short enough', () => {
    assert.ok(publishedIds.length > 0);
    for (const id of publishedIds) {
      assert.equal(BLANK.test(id), false, `blank ID ${JSON.stringify(id)} published`);
      assert.ok(codePoints(id) <= MAX_ID_LENGTH, `long ID published (${codePoints(id)} characters)`);
    }
    assert.ok(!publishedIds.includes('H-NO-CREATED') && !publishedIds.includes('H-FUTURE') && !publishedIds.includes('H-TIMELESS'));
  });

  it('the counts the cycles reported add up to what the quarantine holds, per reason', async () => {
    const reported: Record<string, number> = {};
    for (const report of reports) for (const [reason, n] of Object.entries(report.rejected ?? {})) reported[reason] = (reported[reason] ?? 0) + n;
    const stored = await quarantineCounts(stack.warehouse);
    assert.deepEqual(reported, stored);
    const expected = countByReason(CASES.flatMap((c) => c.quarantined ?? []));
    assert.deepEqual(stored, expected, 'and every case above is accounted for');
  });

  it('the repeated reference keys are named in a data-quality warning', () => {
    const warning = logs.find((l) => l.severity === 'WARNING' && /^Data quality: reference keys/.test(l.message));
    assert.ok(warning, 'a data-quality warning');
    assert.match(warning.message, /services\.service_id "SV-DUP" × 2/);
    assert.match(warning.message, /agents\.agent_code "AG-DUP" × 2/);
  });
});
