/**
 * The benchmark's data: a warehouse in which exactly `size` operations changed in one window.
 *
 * The demo generator (shared/local/demo-data.ts) writes row by row from TypeScript, which is right
 * for a few thousand realistic operations but takes tens of seconds and gigabytes at millions. Here
 * the same kind of rows are made by DuckDB itself from `range()` and `hash()`: deterministic for a
 * given size, and a million changed operations (plus a million already consolidated) take a few
 * seconds. The reference tables (services, agents) come from the demo generator.
 *
 * The window the benchmark's cycle reads is `(WATERMARK - LOOKBACK, WATERMARK + 20 min]` (the
 * cycle runs at WATERMARK + 22 min with the default 2 min safety lag). Its `size` changed
 * operations are, by construction and with no overlap:
 *
 * - 45 % existing operations that changed in the window: a new USSD row (status update) or a new
 *   transaction row (settlement or reversal), so the MERGE updates them;
 * - 50 % new operations created in the window, so the MERGE inserts them;
 * - 5 % existing operations whose rows fall in the lookback margin and did not change since the
 *   last cycle, so the MERGE leaves them unchanged.
 *
 * Another `size` operations (at least 1,000) were created before the window and are already in
 * `consolidated_table`, consolidated as of the watermark by the bare engine (bench/bare.ts).
 * Around the operations' lives: duplicated rows, rows without `operation_id` or `source_timestamp`,
 * operations without a transaction or with an orphan reference, amount and status mismatches,
 * transactions that never settle, unknown services and agents.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { DEMO_DEFAULTS, seedDemoWarehouse } from '../shared/local/demo-data';

/** The watermark before the benchmark's cycle: the end of the previous window. */
export const WATERMARK = new Date('2026-02-02T10:00:00.000Z');
/** When the benchmark's cycle runs (the scheduler's clock). */
export const CYCLE_AT = new Date(WATERMARK.getTime() + 22 * 60_000);
/** Batch ID of the consolidation already in the table (earlier than any batch of the cycle). */
export const HISTORY_BATCH_ID = '20260202T100000Z-000000';

const MINUTE = 60_000;
/** History starts this long before the watermark. */
const HISTORY_SPAN_MS = 6 * 60 * MINUTE;

/** How the `size` changed operations of the window split up. */
export interface Mix {
  size: number;
  /** Operations consolidated before the window (including the lookback and updated ones). */
  history: number;
  updated: number;
  lookback: number;
  inserted: number;
  /**
   * History mode: the history accumulated as production accumulates it, `perDay` operations a
   * day for history / perDay days, every table appended in time order, and the updated
   * operations the most recent ones. Absent: the size sweep's six hours of history.
   */
  accumulated?: { perDay: number };
}

export function mixFor(size: number, history?: { operations: number; perDay: number }): Mix {
  if (!Number.isInteger(size) || size < 20) throw new Error(`size must be an integer >= 20, got ${size}`);
  const lookback = Math.round(size * 0.05);
  const updated = Math.round(size * 0.45);
  const inserted = size - lookback - updated;
  if (!history) return { size, history: Math.max(size, 1_000), updated, lookback, inserted };
  if (history.operations < updated + lookback) throw new Error(`a history of ${history.operations} operations cannot hold the ${updated + lookback} updated and re-read ones of ${size} changes`);
  return { size, history: history.operations, updated, lookback, inserted, accumulated: { perDay: history.perDay } };
}

/** How long the history of `mix` spans before the watermark. */
export function historySpanMs(mix: Mix): number {
  return mix.accumulated ? Math.ceil((mix.history / mix.accumulated.perDay) * 86_400_000) : HISTORY_SPAN_MS;
}

export interface GeneratedCounts {
  ussdRows: number;
  transactionRows: number;
  agents: number;
}

/**
 * Creates the source tables (through the demo generator, which also writes the reference tables)
 * and fills `ussd_operations` and `transactiongu`. The connection's database must be empty.
 */
export async function generateSources(connection: DuckDBConnection, mix: Mix): Promise<GeneratedCounts> {
  await seedDemoWarehouse(connection, { ...DEMO_DEFAULTS, operations: 0 });
  const agents = Number((await connection.runAndReadAll('SELECT count(*) FROM main.agents')).getRows()[0][0]);
  const ms = (d: Date) => BigInt(d.getTime());
  const w = WATERMARK.getTime();
  const span = historySpanMs(mix);
  const ordered = mix.accumulated !== undefined;
  // The sweep updates the first operations of its history; history mode the most recent ones.
  const updatedFrom = ordered ? mix.history - mix.lookback - mix.updated + 1 : 1;
  await connection.run(OPERATIONS_SQL, {
    history: BigInt(mix.history),
    lookback: BigInt(mix.lookback),
    updated_from: BigInt(updatedFrom),
    updated_to: BigInt(updatedFrom + mix.updated - 1),
    ordered,
    total: BigInt(mix.history + mix.inserted),
    agents: BigInt(agents),
    history_from: ms(new Date(w - span)),
    history_span: BigInt(span - 20 * MINUTE),
    lookback_from: ms(new Date(w - 14 * MINUTE)),
    lookback_span: BigInt(9 * MINUTE),
    new_from: ms(new Date(w + 1_000)),
    new_span: BigInt(16 * MINUTE),
    update_from: ms(new Date(w + 1_000)),
    update_span: BigInt(19 * MINUTE),
  });
  await connection.run('BEGIN TRANSACTION');
  // Production appends rows as they happen: history mode inserts them in time order.
  const inOrder = (sql: string, column: number) => (ordered ? `SELECT * FROM (${sql}) AS r ORDER BY ${column} NULLS FIRST` : sql);
  const ussd = await connection.run(`INSERT INTO main.ussd_operations (${USSD_COLUMNS})\n${inOrder(USSD_SQL, 12)}`);
  const transactions = await connection.run(`INSERT INTO main.transactiongu (${TRANSACTION_COLUMNS})\n${inOrder(TRANSACTIONS_SQL, 8)}`);
  await connection.run('COMMIT');
  await connection.run('DROP TABLE bench_ops');
  return { ussdRows: ussd.rowsChanged, transactionRows: transactions.rowsChanged, agents };
}

/** A pseudo-random integer in [0, n) per operation and purpose. */
const draw = (salt: string, n: number | string) => `CAST(hash(i, '${salt}') % ${n} AS BIGINT)`;
const ts = (expression: string) => `make_timestamptz((${expression}) * 1000)`;

/**
 * One row per operation with every draw made once. Index order: history operations
 * `1..history` (the first `updated` of them change in the window, the last `lookback` fall in
 * the lookback margin), then the new operations.
 */
const OPERATIONS_SQL = `
CREATE OR REPLACE TEMP TABLE bench_ops AS
WITH p AS (
  SELECT CAST($history AS BIGINT) AS history, CAST($lookback AS BIGINT) AS lookback,
         CAST($updated_from AS BIGINT) AS updated_from, CAST($updated_to AS BIGINT) AS updated_to, CAST($ordered AS BOOLEAN) AS ordered,
         CAST($total AS BIGINT) AS total, CAST($agents AS BIGINT) AS agents,
         CAST($history_from AS BIGINT) AS history_from, CAST($history_span AS BIGINT) AS history_span,
         CAST($lookback_from AS BIGINT) AS lookback_from, CAST($lookback_span AS BIGINT) AS lookback_span,
         CAST($new_from AS BIGINT) AS new_from, CAST($new_span AS BIGINT) AS new_span,
         CAST($update_from AS BIGINT) AS update_from, CAST($update_span AS BIGINT) AS update_span
),
base AS (
  SELECT r.range AS i, p.*
  FROM range(1, (SELECT total FROM p) + 1) AS r CROSS JOIN p
),
drawn AS (
  SELECT
    i,
    'OP' || lpad(CAST(i AS VARCHAR), 10, '0') AS operation_id,
    'TX' || lpad(CAST(i AS VARCHAR), 10, '0') AS transaction_id,
    CASE WHEN i <= history - lookback THEN 'history' WHEN i <= history THEN 'lookback' ELSE 'new' END AS kind,
    i BETWEEN updated_from AND updated_to AS is_updated,
    CASE
      -- ordered: spread evenly over the span in index order, give or take a minute
      WHEN i <= history - lookback AND ordered THEN history_from + CAST((i - 1) * (history_span - 60000) / greatest(history - lookback, 1) AS BIGINT) + ${draw('created', 60000)}
      WHEN i <= history - lookback THEN history_from + ${draw('created', 'history_span')}
      WHEN i <= history THEN lookback_from + ${draw('created', 'lookback_span')}
      ELSE new_from + ${draw('created', 'new_span')}
    END AS created_ms,
    update_from + ${draw('update_at', 'update_span')} AS update_ms,
    ${draw('update_kind', 2)} = 0 AS update_transaction,
    CASE WHEN ${draw('ref', 1000)} < 20 THEN 'none' WHEN ${draw('ref', 1000)} < 35 THEN 'orphan' ELSE 'normal' END AS reference,
    ['CASHIN', 'CASHOUT', 'TRANSFER', 'BILL_PAYMENT', 'AIRTIME'][1 + ${draw('type', 5)}] AS operation_type,
    CASE WHEN ${draw('svc_unknown', 1000)} < 5 THEN 'SV99' ELSE 'SV' || lpad(CAST(1 + ${draw('svc', 12)} AS VARCHAR), 2, '0') END AS service_id,
    CASE WHEN ${draw('menu', 10)} < 3 THEN '*144#' ELSE '*144*' || CAST(1 + ${draw('code', 6)} AS VARCHAR) || '#' END AS service_code,
    500 + ${draw('amount', 60000)} * 5 AS amount,
    '22177' || lpad(CAST(${draw('msisdn', 10000000)} AS VARCHAR), 7, '0') AS msisdn,
    'SES-' || upper(lpad(to_hex(${draw('session', 4294967296)}), 8, '0')) AS session_id,
    ${draw('agent_unknown', 100)} = 0 AS unknown_agent,
    'AG' || lpad(CAST(1 + ${draw('agent', 'agents')} AS VARCHAR), 4, '0') AS some_agent,
    ${draw('abandoned', 1000)} < 30 AS abandoned,
    ${draw('outcome', 100)} AS outcome_draw,
    2000 + ${draw('final_at', 88000)} AS final_after,
    500 + ${draw('pending_at', 4500)} AS pending_after,
    ${draw('settles', 1000)} >= 40 AS settles,
    3000 + ${draw('settled_at', 117000)} AS settled_after,
    ${draw('settlement', 100)} AS settlement_draw,
    ${draw('mismatch', 1000)} AS mismatch_draw,
    ${draw('duplicate', 100)} = 0 AS duplicated,
    ${draw('no_op_id', 1000)} < 2 AS reject_no_operation_id,
    ${draw('no_source_ts', 1000)} < 2 AS reject_no_source_timestamp
  FROM base
),
lives AS (
  SELECT *,
    CASE
      WHEN abandoned THEN 'INITIATED'
      WHEN reference = 'none' THEN CASE WHEN outcome_draw < 50 THEN 'FAILED' ELSE 'TIMEOUT' END
      WHEN outcome_draw < 86 THEN 'SUCCESS'
      WHEN outcome_draw < 93 THEN 'FAILED'
      ELSE 'TIMEOUT'
    END AS final_status,
    CASE WHEN operation_type IN ('CASHIN', 'CASHOUT') THEN CASE WHEN unknown_agent THEN 'AG9999' ELSE some_agent END END AS agent_code,
    CASE operation_type
      WHEN 'CASHOUT' THEN greatest(50, round(amount * 0.01))
      WHEN 'TRANSFER' THEN least(5000, round(amount * 0.01))
      ELSE 0
    END AS fees
  FROM drawn
)
SELECT *,
  CASE operation_type
    WHEN 'CASHIN' THEN round(amount * 0.004)
    WHEN 'CASHOUT' THEN round(fees * 0.4)
    ELSE 0
  END AS commission,
  CASE final_status
    WHEN 'SUCCESS' THEN CASE WHEN settlement_draw < 97 THEN 'SUCCESSFUL' WHEN settlement_draw < 99 THEN 'FAILED' ELSE 'REVERSED' END
    WHEN 'FAILED' THEN CASE WHEN settlement_draw < 10 THEN 'SUCCESSFUL' WHEN settlement_draw < 95 THEN 'FAILED' ELSE 'REVERSED' END
    WHEN 'TIMEOUT' THEN CASE WHEN settlement_draw < 25 THEN 'SUCCESSFUL' WHEN settlement_draw < 75 THEN 'FAILED' ELSE 'REVERSED' END
    ELSE CASE WHEN settlement_draw < 40 THEN 'SUCCESSFUL' ELSE 'FAILED' END
  END AS settled_status,
  CASE WHEN mismatch_draw < 20 THEN amount + 25 WHEN mismatch_draw < 23 THEN NULL ELSE amount END AS settled_amount,
  -- the status an update in the window moves the operation to
  CASE final_status WHEN 'INITIATED' THEN 'SUCCESS' WHEN 'SUCCESS' THEN 'FAILED' WHEN 'FAILED' THEN 'TIMEOUT' ELSE 'SUCCESS' END AS updated_status
FROM lives`;

const USSD_COLUMNS = 'operation_id, session_id, msisdn, service_code, operation_type, amount, currency, status, transaction_ref, agent_code, created_at, source_timestamp';
const ussdSelect = (overrides: { operationId?: string; status: string; at: string | null }) => `SELECT
  ${overrides.operationId ?? 'operation_id'}, session_id, msisdn, service_code, operation_type, CAST(amount AS DECIMAL(38, 9)), 'XOF', ${overrides.status},
  CASE WHEN reference = 'none' THEN NULL ELSE transaction_id END, agent_code, ${ts('created_ms')}, ${overrides.at === null ? 'NULL' : ts(overrides.at)}
FROM bench_ops`;

/** Every USSD row: the INITIATED one, the final status, duplicates, rejects, updates in the window. */
const USSD_SQL = `
${ussdSelect({ status: "'INITIATED'", at: 'created_ms' })}
UNION ALL
${ussdSelect({ status: 'final_status', at: 'created_ms + final_after' })} WHERE NOT abandoned
UNION ALL
${ussdSelect({ status: 'final_status', at: 'created_ms + final_after' })} WHERE NOT abandoned AND duplicated
UNION ALL
${ussdSelect({ operationId: 'NULL', status: "'INITIATED'", at: 'created_ms' })} WHERE reject_no_operation_id
UNION ALL
${ussdSelect({ status: "'INITIATED'", at: null })} WHERE reject_no_source_timestamp
UNION ALL
${ussdSelect({ status: 'updated_status', at: 'update_ms' })} WHERE is_updated AND NOT (update_transaction AND reference = 'normal')`;

const TRANSACTION_COLUMNS = 'transaction_id, service_id, partner_ref, amount, fees, commission, status, updated_at';
const transactionSelect = (status: string, amount: string, at: string) => `SELECT
  transaction_id, service_id, 'P-' || CAST(hash(i, 'partner') % 1000000000 AS VARCHAR), CAST(${amount} AS DECIMAL(38, 9)),
  CAST(fees AS DECIMAL(38, 9)), CAST(commission AS DECIMAL(38, 9)), ${status}, ${ts(at)}
FROM bench_ops WHERE reference = 'normal'`;

/** Every transaction row: PENDING, its settlement, and the settlements or reversals of the window. */
const TRANSACTIONS_SQL = `
${transactionSelect("'PENDING'", 'amount', 'created_ms + pending_after')}
UNION ALL
${transactionSelect('settled_status', 'settled_amount', 'created_ms + pending_after + settled_after')} AND settles
UNION ALL
${transactionSelect("CASE WHEN settles THEN 'REVERSED' ELSE 'SUCCESSFUL' END", 'CASE WHEN settles THEN settled_amount ELSE amount END', 'update_ms')} AND is_updated AND update_transaction`;
