/**
 * A small warehouse of awkward cases, loaded into DuckDB and given to GoogleSQL's reference engine
 * alike (test/sql/differential.test.ts). Values are plain strings as both take them: NUMERIC as
 * decimal text, TIMESTAMP as RFC 3339 (with offsets and microseconds), DATE as YYYY-MM-DD.
 *
 * The windows of test/sql/cases.ts: scheduled (2026-01-15 09:45, 10:20], replay
 * (2026-01-14 22:00, 2026-01-15 02:30]; the batch's pipeline reads as of 10:20, back to 2025-12-16 09:45
 * (the window's start minus the default OPERATION_MAX_AGE); a cut-off variant reads back to 09:30 only.
 */
import type { Row } from '../../shared/ports';
import type { TableKey } from './cases';

const MAX_NUMERIC = '99999999999999999999999999999.999999999';
const MIN_NUMERIC = '-99999999999999999999999999999.999999999';

type Ussd = [operation_id: string | null, status: string | null, amount: string | null, transaction_ref: string | null, agent_code: string | null, created_at: string | null, source_timestamp: string | null, extra?: Row];

function ussd([operation_id, status, amount, transaction_ref, agent_code, created_at, source_timestamp, extra]: Ussd): Row {
  return {
    operation_id,
    session_id: operation_id ? `s-${operation_id}` : null,
    msisdn: '221770000001',
    service_code: '*144#',
    operation_type: 'TRANSFER',
    amount,
    currency: 'XOF',
    status,
    transaction_ref,
    agent_code,
    created_at,
    source_timestamp,
    ...extra,
  };
}

type Tx = [transaction_id: string | null, service_id: string | null, amount: string | null, status: string | null, updated_at: string | null, extra?: Row];

function tx([transaction_id, service_id, amount, status, updated_at, extra]: Tx): Row {
  return { transaction_id, service_id, partner_ref: transaction_id ? `p-${transaction_id}` : null, amount, fees: '0.5', commission: '0.25', status, updated_at, ...extra };
}

const USSD: Ussd[] = [
  // Two versions; the later one is in the window. SUCCESS with SUCCESSFUL: MATCHED.
  ['op-01', 'INITIATED', '1500', 'tx-01', 'ag-1', '2026-01-15T09:00:00Z', '2026-01-15T09:00:00Z'],
  ['op-01', 'SUCCESS', '1500', 'tx-01', 'ag-1', '2026-01-15T09:00:00Z', '2026-01-15T10:00:00Z'],
  // INITIATED: PENDING.
  ['op-02', 'INITIATED', '200', 'tx-02', 'ag-2', '2026-01-15T10:01:00Z', '2026-01-15T10:01:00Z'],
  // 9.999999999 against 10: AMOUNT_MISMATCH.
  ['op-03', 'SUCCESS', '9.999999999', 'tx-03', 'ag-1', '2026-01-15T10:02:00Z', '2026-01-15T10:02:00.000001Z'],
  // No transaction reference: MISSING_TRANSACTION.
  ['op-04', 'SUCCESS', '10', null, 'ag-1', '2026-01-15T10:03:00Z', '2026-01-15T10:03:00Z'],
  // A reference to a transaction that does not exist.
  ['op-05', 'FAILED', '10', 'tx-missing', null, '2026-01-15T10:04:00Z', '2026-01-15T10:04:00Z'],
  // Exact duplicate source rows (a tie on source_timestamp between identical rows).
  ['op-06', 'FAILED', '0', 'tx-06', 'ag-2', '2026-01-15T10:05:00Z', '2026-01-15T10:05:00.123456Z'],
  ['op-06', 'FAILED', '0', 'tx-06', 'ag-2', '2026-01-15T10:05:00Z', '2026-01-15T10:05:00.123456Z'],
  // Times given with offsets; created at 23:30 UTC on the 14th although 01:30 local on the 15th.
  ['op-07', 'TIMEOUT', '-0.000000001', 'tx-07', 'ag-3', '2026-01-15T01:30:00+02:00', '2026-01-15T11:06:00.5+01:00'],
  // Unicode and empty strings.
  ['op-08', 'SUCCESS', '12.5', 'tx-08', 'ag-ü', '2026-01-15T10:07:00Z', '2026-01-15T10:07:00Z', { msisdn: '', currency: '', service_code: '*144*ü#', operation_type: 'Überweisung 東京 🚀' }],
  // No amount: AMOUNT_MISMATCH.
  ['op-09', 'SUCCESS', null, 'tx-09', 'ag-1', '2026-01-15T10:08:00Z', '2026-01-15T10:08:00Z'],
  // The largest NUMERIC on both sides: MATCHED; the smallest against the largest.
  ['op-10', 'SUCCESS', MAX_NUMERIC, 'tx-10', 'ag-1', '2026-01-14T23:59:59.999999Z', '2026-01-15T10:09:00Z'],
  ['op-11', 'SUCCESS', MIN_NUMERIC, 'tx-11', 'ag-1', '2026-01-15T00:00:00Z', '2026-01-15T10:10:00Z'],
  // Changed only through its transaction (USSD row before the window).
  ['op-12', 'SUCCESS', '300', 'tx-12', 'ag-2', '2026-01-15T08:00:00Z', '2026-01-15T08:00:00Z'],
  // On the window's end (in), on its start (out), after its end (out; the enrichment reads the earlier row).
  ['op-13', 'FAILED', '40', 'tx-13', 'ag-2', '2026-01-15T10:20:00Z', '2026-01-15T10:20:00Z'],
  ['op-14', 'SUCCESS', '50', 'tx-14', 'ag-2', '2026-01-15T09:45:00Z', '2026-01-15T09:45:00Z'],
  ['op-15', 'SUCCESS', '60', 'tx-15', 'ag-2', '2026-01-15T10:10:00Z', '2026-01-15T10:10:00Z'],
  ['op-15', 'FAILED', '60', 'tx-15', 'ag-2', '2026-01-15T10:10:00Z', '2026-01-15T10:20:00.000001Z'],
  // TIMEOUT with SUCCESSFUL: STATUS_MISMATCH; FAILED with REVERSED: MATCHED; an unknown status.
  ['op-16', 'TIMEOUT', '70', 'tx-16', 'ag-1', '2026-01-15T10:11:00Z', '2026-01-15T10:11:00Z'],
  ['op-17', 'FAILED', '80', 'tx-17', 'ag-1', '2026-01-15T10:12:00Z', '2026-01-15T10:12:00Z'],
  ['op-18', null, '90', 'tx-18', 'ag-1', '2026-01-15T10:13:00Z', '2026-01-15T10:13:00Z'],
  // The replay window, across midnight.
  ['op-19', 'SUCCESS', '5', 'tx-19', 'ag-1', '2026-01-14T23:59:00Z', '2026-01-15T00:00:00Z'],
  // Rejected: no operation_id (in the window), no source_timestamp (created in the window), neither time.
  [null, 'SUCCESS', '1', 'tx-01', 'ag-1', '2026-01-15T10:00:00Z', '2026-01-15T10:00:00Z'],
  [null, 'SUCCESS', '1', 'tx-01', 'ag-1', '2026-01-15T10:00:00Z', '2026-01-15T10:20:00Z'],
  ['op-20', 'SUCCESS', '1', 'tx-01', 'ag-1', '2026-01-15T10:15:00Z', null],
  ['op-21', 'SUCCESS', '1', 'tx-01', 'ag-1', null, null],
  [null, 'SUCCESS', '1', null, null, '2026-01-15T01:00:00Z', null],
];

const TRANSACTIONS: Tx[] = [
  ['tx-01', 'svc-1', '1500', 'PENDING', '2026-01-15T09:00:00Z'],
  ['tx-01', 'svc-1', '1500.000000000', 'SUCCESSFUL', '2026-01-15T09:59:00Z'],
  ['tx-02', 'svc-2', '200', 'SUCCESSFUL', '2026-01-15T10:01:00Z'],
  ['tx-03', 'svc-1', '10', 'SUCCESSFUL', '2026-01-15T10:02:00Z'],
  ['tx-06', 'svc-2', '0.000000000', 'REVERSED', '2026-01-15T10:05:00Z'],
  ['tx-06', 'svc-2', '0.000000000', 'REVERSED', '2026-01-15T10:05:00Z'],
  ['tx-07', 'svc-ü', '-0.000000001', 'FAILED', '2026-01-15T10:06:00.25Z'],
  ['tx-08', 'svc-1', '12.50', 'SUCCESSFUL', '2026-01-15T10:07:00Z', { fees: null, commission: null }],
  ['tx-09', 'svc-1', '7', 'SUCCESSFUL', '2026-01-15T10:08:00Z'],
  ['tx-10', null, MAX_NUMERIC, 'SUCCESSFUL', '2026-01-15T10:09:00Z', { fees: MAX_NUMERIC, commission: MIN_NUMERIC }],
  ['tx-11', 'svc-1', MAX_NUMERIC, 'SUCCESSFUL', '2026-01-15T10:10:00Z'],
  // The transaction changed in the window, after its USSD row; its later version is past the window's end.
  ['tx-12', 'svc-2', '300', 'PENDING', '2026-01-15T08:00:00Z'],
  ['tx-12', 'svc-2', '300', 'SUCCESSFUL', '2026-01-15T10:19:59.999999Z'],
  ['tx-12', 'svc-2', '301', 'REVERSED', '2026-01-15T10:20:00.000001Z'],
  ['tx-13', 'svc-2', '40', 'FAILED', '2026-01-15T10:20:00Z'],
  ['tx-14', 'svc-2', '50', 'SUCCESSFUL', '2026-01-15T09:45:00Z'],
  ['tx-15', 'svc-2', '60', 'SUCCESSFUL', '2026-01-15T10:10:00Z'],
  ['tx-16', 'svc-1', '70', 'SUCCESSFUL', '2026-01-15T10:11:00Z'],
  ['tx-17', 'svc-1', '80', 'REVERSED', '2026-01-15T10:12:00Z'],
  ['tx-18', 'svc-1', '90', 'SUCCESSFUL', '2026-01-15T10:13:00Z'],
  ['tx-19', 'svc-1', '5', 'SUCCESSFUL', '2026-01-15T02:00:00Z'],
  // No updated_at; no ID.
  ['tx-20', 'svc-1', '1', 'SUCCESSFUL', null],
  [null, 'svc-1', '1', 'SUCCESSFUL', '2026-01-15T10:00:00Z'],
];

/** The consolidated table before the batch's MERGE: the cases of its match conditions. */
function consolidated(operation_id: string, version_ts: string, batch_id: string, created_at: string, extra: Row = {}): Row {
  return {
    operation_id,
    msisdn: '221770000001',
    service_code: '*144#',
    operation_type: 'TRANSFER',
    amount: '1500',
    currency: 'XOF',
    ussd_status: 'SUCCESS',
    created_at,
    source_timestamp: version_ts,
    transaction_id: null,
    transaction_status: null,
    transaction_amount: null,
    fees: null,
    commission: null,
    service_name: null,
    service_category: null,
    agent_name: null,
    agent_region: null,
    reconciliation_status: 'MATCHED',
    version_ts,
    batch_id,
    consolidated_at: '2026-01-15T09:31:00Z',
    ...extra,
  };
}

export const FIXTURE: Record<Exclude<TableKey, 'enriched'>, Row[]> = {
  // Written by the audit, read by none of the statements.
  audit: [],
  ussd: USSD.map(ussd),
  transactions: TRANSACTIONS.map(tx),
  services: [
    { service_id: 'svc-1', service_name: 'Transfert', category: 'P2P' },
    { service_id: 'svc-2', service_name: 'Paiement de facture', category: 'BILL' },
    { service_id: 'svc-ü', service_name: 'Überweisung 東京 🚀', category: '' },
    { service_id: null, service_name: 'orphan', category: null },
  ],
  agents: [
    { agent_code: 'ag-1', agent_name: 'Awa Ndiaye', region: 'Dakar' },
    { agent_code: 'ag-2', agent_name: 'Ñandú', region: null },
    { agent_code: 'ag-ü', agent_name: '', region: 'Saint-Louis' },
  ],
  ids: ['op-01', 'op-02', 'op-03', 'op-04', 'op-05', 'op-06', 'op-07', 'op-08', 'op-09', 'op-10', 'op-11', 'op-12', 'op-13', 'op-15', 'op-16', 'op-17', 'op-18', 'op-19', 'op-20', 'op-01', 'op-unknown'].map((operation_id) => ({ operation_id })),
  consolidated: [
    // An older version: replaced.
    consolidated('op-01', '2026-01-15T09:00:00Z', '20260115T092000Z-aaaaaa', '2026-01-15T09:00:00Z'),
    // A newer version than the batch's: never replaced, not even forced.
    consolidated('op-02', '2026-01-15T11:00:00Z', '20260115T112000Z-bbbbbb', '2026-01-15T10:01:00Z'),
    // The same version from an earlier batch, with other values: replaced.
    consolidated('op-03', '2026-01-15T10:02:00.000001Z', '20260115T100000Z-cccccc', '2026-01-15T10:02:00Z', { amount: '10' }),
    // The same version from a later batch: replaced only when forced.
    consolidated('op-16', '2026-01-15T10:11:00Z', '20260115T104000Z-dddddd', '2026-01-15T10:11:00Z', { amount: '71' }),
    // The same version, earlier batch, equal values (NULLs on both sides): replaced only when forced.
    consolidated('op-04', '2026-01-15T10:03:00Z', '20260115T100000Z-eeeeee', '2026-01-15T10:03:00Z'),
    // Created the day before, microseconds before midnight: matched only when that day is in @days.
    consolidated('op-10', '2026-01-15T10:00:00Z', '20260115T100000Z-ffffff', '2026-01-14T23:59:59.999999Z'),
  ],
};
