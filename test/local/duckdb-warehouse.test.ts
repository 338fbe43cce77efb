import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDbWarehouse } from '../../shared/local/duckdb-warehouse';
import type { QueryParam, Row, SchemaField, TableRef } from '../../shared/ports';
import { loadSchema } from '../../shared/schema';
import { duckdbDialect } from '../../shared/sql/dialect';
import { mergeEnriched } from '../../shared/sql/statements';

const TARGET: TableRef = { dataset: 'consolidated_dataset', table: 'consolidated_table' };
const ENRICHED: TableRef = { dataset: 'staging', table: 'enriched_b' };
/** The enriched table has the consolidated columns except those the MERGE writes, timestamps as INT64 microseconds (`*_us`). */
const ENRICHED_SCHEMA = loadSchema('consolidated_table')
  .filter((f) => f.name !== 'batch_id' && f.name !== 'consolidated_at')
  .map((f) => (f.type === 'TIMESTAMP' ? { ...f, name: `${f.name}_us`, type: 'INT64' } : f));

async function rowsOf(warehouse: DuckDbWarehouse, sql: string): Promise<Row[]> {
  return (await warehouse.query({ sql, params: {} })).rows;
}

async function collect(iterable: AsyncIterable<Row[]>): Promise<Row[][]> {
  const pages: Row[][] = [];
  for await (const page of iterable) pages.push(page);
  return pages;
}

describe('DuckDbWarehouse', () => {
  let warehouse: DuckDbWarehouse;
  let dir: string;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'duckdb-warehouse-'));
    warehouse = await DuckDbWarehouse.open(':memory:');
  });
  afterEach(async () => {
    await warehouse.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('parameters', () => {
    const cases: { param: QueryParam; sqlType: string; expected: unknown }[] = [
      { param: { type: 'STRING', value: "it's" }, sqlType: 'VARCHAR', expected: "it's" },
      { param: { type: 'STRING', value: null }, sqlType: 'VARCHAR', expected: null },
      { param: { type: 'INT64', value: 42 }, sqlType: 'BIGINT', expected: 42 },
      { param: { type: 'INT64', value: '-7' }, sqlType: 'BIGINT', expected: -7 },
      { param: { type: 'BOOL', value: true }, sqlType: 'BOOLEAN', expected: true },
      { param: { type: 'BOOL', value: false }, sqlType: 'BOOLEAN', expected: false },
      { param: { type: 'TIMESTAMP', value: '2026-01-15T10:20:00Z' }, sqlType: 'TIMESTAMPTZ', expected: '2026-01-15T10:20:00.000Z' },
      { param: { type: 'TIMESTAMP', value: '2026-01-15T12:20:00.250+02:00' }, sqlType: 'TIMESTAMPTZ', expected: '2026-01-15T10:20:00.250Z' },
      { param: { type: 'DATE', value: '2026-01-15' }, sqlType: 'DATE', expected: '2026-01-15' },
      { param: { type: 'STRING_ARRAY', value: ['a', 'b'] }, sqlType: 'VARCHAR[]', expected: ['a', 'b'] },
      { param: { type: 'STRING_ARRAY', value: [] }, sqlType: 'VARCHAR[]', expected: [] },
      { param: { type: 'DATE_ARRAY', value: ['2026-01-15', '2026-01-16'] }, sqlType: 'DATE[]', expected: ['2026-01-15', '2026-01-16'] },
      { param: { type: 'DATE_ARRAY', value: [] }, sqlType: 'DATE[]', expected: [] },
    ];
    for (const { param, sqlType, expected } of cases) {
      it(`binds ${param.type} ${JSON.stringify(param.value)}`, async () => {
        const { rows } = await warehouse.query({ sql: `SELECT CAST($p AS ${sqlType}) AS v`, params: { p: param } });
        assert.deepEqual(rows, [{ v: expected }]);
      });
    }

    it('binds empty arrays in IN (the dialect rendering)', async () => {
      const sql = `SELECT count(*) AS n FROM range(3) WHERE ${duckdbDialect.inArray('CAST(DATE \'2026-01-15\' + range::INTEGER AS DATE)', 'days', 'DATE_ARRAY')}`;
      assert.deepEqual((await warehouse.query({ sql, params: { days: { type: 'DATE_ARRAY', value: [] } } })).rows, [{ n: 0 }]);
      assert.deepEqual((await warehouse.query({ sql, params: { days: { type: 'DATE_ARRAY', value: ['2026-01-16', '2026-01-17'] } } })).rows, [{ n: 2 }]);
    });

    const wrong: QueryParam[] = [
      { type: 'INT64', value: 'x' },
      { type: 'INT64', value: 1.5 },
      { type: 'BOOL', value: 'true' },
      { type: 'TIMESTAMP', value: 5 },
      { type: 'STRING_ARRAY', value: 'a' },
      { type: 'DATE_ARRAY', value: [1 as unknown as string] },
    ];
    for (const param of wrong) {
      it(`refuses ${param.type} ${JSON.stringify(param.value)} naming the parameter`, async () => {
        await assert.rejects(warehouse.query({ sql: 'SELECT $p AS v', params: { p: param } }), /\$p of type/);
      });
    }
  });

  describe('value normalization', () => {
    const cases: [string, unknown][] = [
      ["TIMESTAMPTZ '2026-01-15 10:20:00+00'", '2026-01-15T10:20:00.000Z'],
      ["TIMESTAMPTZ '2026-01-15 11:20:00.123456+01'", '2026-01-15T10:20:00.123456Z'],
      ["TIMESTAMP '2026-01-15 10:20:00'", '2026-01-15T10:20:00.000Z'],
      ["TIMESTAMP '1969-12-31 23:59:59.9995'", '1969-12-31T23:59:59.999500Z'],
      ["CAST('2026-01-15 10:20:00' AS TIMESTAMP_MS)", '2026-01-15T10:20:00.000Z'],
      ["CAST('2026-01-15 10:20:00' AS TIMESTAMP_S)", '2026-01-15T10:20:00.000Z'],
      ["CAST('2026-01-15 10:20:00.5' AS TIMESTAMP_NS)", '2026-01-15T10:20:00.500Z'],
      ["DATE '2026-01-15'", '2026-01-15'],
      ["CAST('1500' AS DECIMAL(38, 9))", '1500'],
      ["CAST('1500.50' AS DECIMAL(38, 9))", '1500.5'],
      ["CAST('-0.000000001' AS DECIMAL(38, 9))", '-0.000000001'],
      ["CAST('0' AS DECIMAL(38, 9))", '0'],
      ['CAST(9007199254740991 AS BIGINT)', 9007199254740991],
      ['CAST(12 AS HUGEINT)', 12],
      ['CAST(3 AS INTEGER)', 3],
      ['CAST(1.5 AS DOUBLE)', 1.5],
      ["'text'", 'text'],
      ['NULL', null],
      ['true', true],
      ["[1, 2]", [1, 2]],
      ["{'a': DATE '2026-01-15', 'b': NULL}", { a: '2026-01-15', b: null }],
    ];
    for (const [expression, expected] of cases) {
      it(`${expression} -> ${JSON.stringify(expected)}`, async () => {
        assert.deepEqual(await rowsOf(warehouse, `SELECT ${expression} AS v`), [{ v: expected }]);
      });
    }

    it('runs every connection in UTC', async () => {
      assert.deepEqual(await rowsOf(warehouse, "SELECT CAST(TIMESTAMPTZ '2026-01-15 23:30:00+00' AS DATE) AS d, current_setting('TimeZone') AS tz"), [{ d: '2026-01-15', tz: 'UTC' }]);
    });
  });

  describe('DML and job IDs', () => {
    beforeEach(async () => {
      await warehouse.ensureTable({ dataset: 's', table: 't' }, [{ name: 'id', type: 'STRING', mode: 'REQUIRED' }]);
    });
    const insert = (id: string) => ({ sql: 'INSERT INTO "s"."t" VALUES (CAST($id AS VARCHAR))', params: { id: { type: 'STRING' as const, value: id } } });

    it('reports inserted, updated and deleted rows of plain DML', async () => {
      assert.deepEqual((await warehouse.query({ sql: "INSERT INTO s.t VALUES ('a'), ('b')", params: {} })).dml, { inserted: 2, updated: 0, deleted: 0 });
      assert.deepEqual((await warehouse.query({ sql: "UPDATE s.t SET id = id || 'x'", params: {} })).dml, { inserted: 0, updated: 2, deleted: 0 });
      assert.deepEqual((await warehouse.query({ sql: "DELETE FROM s.t WHERE id = 'ax'", params: {} })).dml, { inserted: 0, updated: 0, deleted: 1 });
    });

    it('runs a job ID once: a repeat returns the recorded result without running', async () => {
      const first = await warehouse.query(insert('a'), { jobId: 'job_1' });
      const second = await warehouse.query(insert('b'), { jobId: 'job_1' });
      assert.deepEqual(second, first);
      assert.deepEqual(await rowsOf(warehouse, 'SELECT id FROM s.t'), [{ id: 'a' }]);
    });

    it('runs a job ID once under concurrent calls', async () => {
      const results = await Promise.all([1, 2, 3, 4].map((n) => warehouse.query(insert(`r${n}`), { jobId: 'job_concurrent' })));
      assert.equal(new Set(results.map((r) => JSON.stringify(r))).size, 1);
      assert.deepEqual(await rowsOf(warehouse, 'SELECT count(*) AS n FROM s.t'), [{ n: 1 }]);
    });

    it('remembers job IDs across reopening the file', async () => {
      const file = join(dir, 'w.duckdb');
      const onFile = await DuckDbWarehouse.open(file);
      await onFile.ensureTable({ dataset: 's', table: 't' }, [{ name: 'id', type: 'STRING' }]);
      await onFile.query(insert('a'), { jobId: 'job_file' });
      await onFile.close();
      const reopened = await DuckDbWarehouse.open(file);
      try {
        assert.deepEqual((await reopened.query(insert('b'), { jobId: 'job_file' })).dml, { inserted: 1, updated: 0, deleted: 0 });
        assert.deepEqual(await rowsOf(reopened, 'SELECT id FROM s.t'), [{ id: 'a' }]);
      } finally {
        await reopened.close();
      }
    });

    it('records nothing for a failed job, so its ID can run again (and the error says which job)', async () => {
      await assert.rejects(warehouse.query({ sql: 'INSERT INTO s.missing VALUES (1)', params: {} }, { jobId: 'job_fail' }), /job job_fail.*missing/s);
      await warehouse.query({ sql: 'CREATE TABLE s.missing (n INTEGER)', params: {} });
      assert.deepEqual((await warehouse.query({ sql: 'INSERT INTO s.missing VALUES (1)', params: {} }, { jobId: 'job_fail' })).dml?.inserted, 1);
    });

    it('surfaces a transaction conflict as "concurrent update", keeping the cause', async () => {
      await warehouse.query({ sql: "INSERT INTO s.t VALUES ('a')", params: {} });
      const other = await warehouse.connect();
      try {
        await other.run('BEGIN TRANSACTION');
        await other.run("UPDATE s.t SET id = 'other' WHERE id = 'a'");
        const error = await warehouse.query({ sql: "UPDATE s.t SET id = 'mine' WHERE id = 'a'", params: {} }, { jobId: 'job_conflict' }).then(
          () => assert.fail('expected a conflict'),
          (e: Error) => e,
        );
        assert.match(error.message, /concurrent update/);
        assert.match(String((error.cause as Error).message), /conflict/i);
        await other.run('COMMIT');
      } finally {
        other.closeSync();
      }
      // The failed job recorded nothing: a retry under the same ID runs.
      assert.deepEqual((await warehouse.query({ sql: "UPDATE s.t SET id = 'mine' WHERE id = 'other'", params: {} }, { jobId: 'job_conflict' })).dml?.updated, 1);
    });

    it('serves concurrent queries on separate connections', async () => {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => warehouse.query({ sql: 'SELECT CAST($n AS BIGINT) * 2 AS v', params: { n: { type: 'INT64', value: i } } })));
      assert.deepEqual(results.map((r) => r.rows[0].v), Array.from({ length: 20 }, (_, i) => i * 2));
    });
  });

  describe('MERGE of enriched rows (mergeEnriched rendered for DuckDB)', () => {
    const T0 = '2026-01-15T08:00:00.000Z';
    const T1 = '2026-01-15T09:00:00.000Z';
    const T2 = '2026-01-15T10:00:00.000Z';
    const B1 = '20260115T090000Z-aaaaaa';
    const B2 = '20260115T100000Z-bbbbbb';

    async function stage(rows: { id: string; version: string; amount?: string; status?: string; day?: string }[]): Promise<void> {
      await warehouse.dropTable(ENRICHED);
      await warehouse.ensureTable(ENRICHED, ENRICHED_SCHEMA);
      for (const r of rows) {
        await warehouse.query({
          sql: `INSERT INTO "staging"."enriched_b" (operation_id, amount, created_at_us, source_timestamp_us, reconciliation_status, version_ts_us)
VALUES (CAST($id AS VARCHAR), CAST($amount AS DECIMAL(38, 9)), epoch_us(CAST($created AS TIMESTAMPTZ)), epoch_us(CAST($version AS TIMESTAMPTZ)), CAST($status AS VARCHAR), epoch_us(CAST($version AS TIMESTAMPTZ)))`,
          params: {
            id: { type: 'STRING', value: r.id },
            amount: { type: 'STRING', value: r.amount ?? '100' },
            created: { type: 'TIMESTAMP', value: `${r.day ?? '2026-01-15'}T07:00:00Z` },
            version: { type: 'TIMESTAMP', value: r.version },
            status: { type: 'STRING', value: r.status ?? 'MATCHED' },
          },
        });
      }
    }
    const merge = (batchId: string, force = false, created = { from: '2026-01-14T00:00:00.000Z', to: '2026-01-16T00:00:00.000Z' }) =>
      warehouse.query(mergeEnriched(duckdbDialect, { target: TARGET, enriched: ENRICHED }, { batchId, consolidatedAt: T2, created, force }), { jobId: `merge_${batchId}_${force}_${created.from}` });
    const target = async () =>
      Object.fromEntries((await rowsOf(warehouse, 'SELECT operation_id, amount, version_ts, batch_id FROM consolidated_dataset.consolidated_table ORDER BY operation_id')).map((r) => [r.operation_id, r]));

    beforeEach(async () => {
      await warehouse.ensureTable(TARGET, loadSchema('consolidated_table'));
      await stage([
        { id: 'newer', version: T0 },
        { id: 'same', version: T1 },
        { id: 'same-changed', version: T1 },
        { id: 'older', version: T1 },
        { id: 'other-day', version: T0, day: '2026-01-14' },
      ]);
      assert.deepEqual((await merge(B1)).dml, { inserted: 5, updated: 0, deleted: 0 });
    });

    it('turns the microseconds of the enriched rows back into exact TIMESTAMPs, and orders versions to the microsecond', async () => {
      await stage([
        { id: 'micro', version: '2026-01-15T09:30:00.123456Z' },
        { id: 'micro', version: '2026-01-15T09:30:00.123455Z', amount: '1' },
      ]);
      await merge(B2);
      const connection = await warehouse.connect();
      const rows = (await connection.runAndReadAll("SELECT epoch_us(version_ts), epoch_us(source_timestamp), amount FROM consolidated_dataset.consolidated_table WHERE operation_id = 'micro'")).getRows();
      connection.closeSync();
      assert.deepEqual(rows.map((r) => r.map(String)), [[String(Date.parse('2026-01-15T09:30:00.123Z') * 1000 + 456), String(Date.parse('2026-01-15T09:30:00.123Z') * 1000 + 456), '100.000000000']]);
    });

    it('inserts new operations, updates only newer versions, and keeps the latest source row per operation', async () => {
      await stage([
        { id: 'newer', version: T1, amount: '200' },
        { id: 'same', version: T1 },
        { id: 'same-changed', version: T1, amount: '150' },
        { id: 'older', version: T0, amount: '1' },
        { id: 'fresh', version: T0 },
        { id: 'fresh', version: T1, amount: '300' },
      ]);
      const result = await merge(B2);
      assert.deepEqual(result, { rows: [], dml: { inserted: 1, updated: 2, deleted: 0 } });
      const rows = await target();
      assert.deepEqual(rows.newer, { operation_id: 'newer', amount: '200', version_ts: T1, batch_id: B2 });
      assert.deepEqual(rows.same, { operation_id: 'same', amount: '100', version_ts: T1, batch_id: B1 }, 'same version, same values: untouched');
      assert.deepEqual(rows['same-changed'], { operation_id: 'same-changed', amount: '150', version_ts: T1, batch_id: B2 }, 'same version, later batch, different values: updated');
      assert.deepEqual(rows.older, { operation_id: 'older', amount: '100', version_ts: T1, batch_id: B1 }, 'older version never moves a row back');
      assert.deepEqual(rows.fresh, { operation_id: 'fresh', amount: '300', version_ts: T1, batch_id: B2 }, 'latest version_ts of the source wins');
    });

    it('does not let an earlier batch replace a same-version row with different values', async () => {
      await stage([{ id: 'same-changed', version: T1, amount: '150' }]);
      assert.deepEqual((await merge('20260115T080000Z-cccccc')).dml, { inserted: 0, updated: 0, deleted: 0 });
    });

    // A replay forces the MERGE: a row of the SAME version is replaced whatever the batch order and
    // even with equal values (a reference-data change shows only through a replay), but an older
    // version never replaces a newer one, forced or not.
    const forced: { name: string; batchId: string; row: { id: string; version: string; amount?: string }; dml: { inserted: number; updated: number }; after: Record<string, unknown> }[] = [
      { name: 'same version, same values -> replaced (the replay\'s batch now owns the row)', batchId: B2, row: { id: 'same', version: T1 }, dml: { inserted: 0, updated: 1 }, after: { operation_id: 'same', amount: '100', version_ts: T1, batch_id: B2 } },
      { name: 'same version, different values -> replaced', batchId: B2, row: { id: 'same-changed', version: T1, amount: '150' }, dml: { inserted: 0, updated: 1 }, after: { operation_id: 'same-changed', amount: '150', version_ts: T1, batch_id: B2 } },
      { name: 'same version from an earlier batch ID -> still replaced', batchId: '20260115T080000Z-cccccc', row: { id: 'same-changed', version: T1, amount: '150' }, dml: { inserted: 0, updated: 1 }, after: { operation_id: 'same-changed', amount: '150', version_ts: T1, batch_id: '20260115T080000Z-cccccc' } },
      { name: 'older version -> never replaced', batchId: B2, row: { id: 'older', version: T0, amount: '1' }, dml: { inserted: 0, updated: 0 }, after: { operation_id: 'older', amount: '100', version_ts: T1, batch_id: B1 } },
      { name: 'newer version -> replaced', batchId: B2, row: { id: 'newer', version: T2, amount: '200' }, dml: { inserted: 0, updated: 1 }, after: { operation_id: 'newer', amount: '200', version_ts: T2, batch_id: B2 } },
      { name: 'an operation not in the table -> inserted', batchId: B2, row: { id: 'fresh', version: T0, amount: '7' }, dml: { inserted: 1, updated: 0 }, after: { operation_id: 'fresh', amount: '7', version_ts: T0, batch_id: B2 } },
    ];
    for (const c of forced) {
      it(`forced (replay): ${c.name}`, async () => {
        await stage([c.row]);
        assert.deepEqual((await merge(c.batchId, true)).dml, { ...c.dml, deleted: 0 });
        assert.deepEqual((await target())[c.row.id], c.after);
      });
    }

    it('forced (replay): in one MERGE, the same-version row is replaced and the older one left alone', async () => {
      await stage([
        { id: 'older', version: T0, amount: '1' },
        { id: 'same', version: T1, amount: '5' },
      ]);
      assert.deepEqual((await merge(B2, true)).dml, { inserted: 0, updated: 1, deleted: 0 });
      const rows = await target();
      assert.equal(rows.older.amount, '100', 'an older version never moves a row back, even forced');
      assert.equal(rows.same.amount, '5');
    });

    it('not forced, the same same-version rows are left alone (the control of the forced cases)', async () => {
      await stage([
        { id: 'same', version: T1 },
        { id: 'same-changed', version: T1, amount: '150' },
      ]);
      assert.deepEqual((await merge('20260115T080000Z-cccccc', false)).dml, { inserted: 0, updated: 0, deleted: 0 });
    });

    it('is idempotent under its job ID', async () => {
      await stage([{ id: 'newer', version: T2 }]);
      const first = await merge(B2);
      await warehouse.query({ sql: 'UPDATE consolidated_dataset.consolidated_table SET version_ts = TIMESTAMPTZ \'2000-01-01 00:00:00+00\'', params: {} });
      assert.deepEqual(await merge(B2), first);
      assert.equal((await target()).newer.version_ts, '2000-01-01T00:00:00.000Z', 'the repeat did not run');
    });
  });

  describe('stream', () => {
    it('yields pages of the requested size, with bound parameters', async () => {
      const pages = await collect(warehouse.stream({ sql: 'SELECT range AS n FROM range(CAST($count AS BIGINT)) ORDER BY n', params: { count: { type: 'INT64', value: 25 } } }, { pageSize: 10 }));
      assert.deepEqual(pages.map((p) => p.length), [10, 10, 5]);
      assert.deepEqual(pages.flat().map((r) => r.n), Array.from({ length: 25 }, (_, i) => i));
    });

    it('streams results larger than one DuckDB chunk and yields nothing for an empty result', async () => {
      const pages = await collect(warehouse.stream({ sql: "SELECT 'id' || range AS operation_id FROM range(5000)", params: {} }, { pageSize: 2000 }));
      assert.deepEqual(pages.map((p) => p.length), [2000, 2000, 1000]);
      assert.deepEqual(await collect(warehouse.stream({ sql: 'SELECT 1 AS n WHERE false', params: {} })), []);
    });

    it('can be abandoned early and the warehouse keeps working', async () => {
      for await (const page of warehouse.stream({ sql: 'SELECT range AS n FROM range(100000)', params: {} }, { pageSize: 100 })) {
        assert.equal(page.length, 100);
        break;
      }
      assert.deepEqual(await rowsOf(warehouse, 'SELECT 1 AS one'), [{ one: 1 }]);
    });

    it('reports a bad query with its text', async () => {
      await assert.rejects(collect(warehouse.stream({ sql: 'SELECT * FROM nowhere', params: {} })), (e: Error) => /streaming query failed.*nowhere/s.test(e.message));
    });
  });

  describe('tables', () => {
    const IDS: TableRef = { dataset: 'staging', table: 'ids_b' };
    const schema: SchemaField[] = loadSchema('batch_ids');
    const writeChunk = (name: string, ids: string[]) => {
      const file = join(dir, name);
      writeFileSync(file, ids.map((id) => JSON.stringify({ operation_id: id })).join('\n') + '\n');
      return file;
    };

    it('loads newline-delimited JSON files, replacing the table, once per job ID', async () => {
      const files = [writeChunk('0.ndjson', ['a', 'b']), writeChunk('1.ndjson', ['c'])];
      await warehouse.loadNdjson(IDS, files, schema, { jobId: 'load_1' });
      assert.deepEqual(await rowsOf(warehouse, 'SELECT operation_id FROM staging.ids_b ORDER BY 1'), [{ operation_id: 'a' }, { operation_id: 'b' }, { operation_id: 'c' }]);
      await warehouse.loadNdjson(IDS, [writeChunk('2.ndjson', ['z'])], schema, { jobId: 'load_1' });
      assert.equal((await rowsOf(warehouse, 'SELECT count(*) AS n FROM staging.ids_b'))[0].n, 3, 'same job ID: not run again');
      await warehouse.loadNdjson(IDS, [join(dir, '2.ndjson')], schema, { jobId: 'load_2' });
      assert.deepEqual(await rowsOf(warehouse, 'SELECT operation_id FROM staging.ids_b'), [{ operation_id: 'z' }], 'a new job replaces the content');
    });

    it('creates an empty table from no files, and refuses a row without a REQUIRED field', async () => {
      await warehouse.loadNdjson(IDS, [], schema, { jobId: 'load_empty' });
      assert.deepEqual(await rowsOf(warehouse, 'SELECT count(*) AS n FROM staging.ids_b'), [{ n: 0 }]);
      const bad = join(dir, 'bad.ndjson');
      writeFileSync(bad, '{"operation_id":"a"}\n{"other":"b"}\n');
      await assert.rejects(warehouse.loadNdjson(IDS, [bad], schema, { jobId: 'load_bad' }), /Loading 1 file\(s\) into staging\.ids_b failed \(job load_bad\).*NOT NULL/s);
    });

    it('ensures and drops tables; names are quoted or plain, and checked', async () => {
      const ref = { dataset: 'consolidated_dataset', table: 'consolidated_table' };
      assert.equal(warehouse.qualify(ref), '"consolidated_dataset"."consolidated_table"');
      assert.equal(warehouse.plainName(ref), 'consolidated_dataset.consolidated_table');
      await warehouse.ensureTable(ref, loadSchema('consolidated_table'), { partitionField: 'created_at', clusterFields: ['operation_id'] });
      await warehouse.ensureTable(ref, loadSchema('consolidated_table'));
      const columns = await rowsOf(warehouse, "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = 'consolidated_table' AND column_name IN ('amount', 'created_at', 'msisdn') ORDER BY 1");
      assert.deepEqual(columns, [
        { column_name: 'amount', data_type: 'DECIMAL(38,9)', is_nullable: 'YES' },
        { column_name: 'created_at', data_type: 'TIMESTAMP WITH TIME ZONE', is_nullable: 'NO' },
        { column_name: 'msisdn', data_type: 'VARCHAR', is_nullable: 'YES' },
      ]);
      await warehouse.dropTable(ref);
      await warehouse.dropTable(ref);
      assert.deepEqual(await rowsOf(warehouse, "SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = 'consolidated_table'"), [{ n: 0 }]);
      assert.throws(() => warehouse.qualify({ dataset: 'x"; DROP', table: 't' }), /not a valid DuckDB/);
    });

    it('creates the same table from concurrent callers', async () => {
      await Promise.all(Array.from({ length: 8 }, () => warehouse.ensureTable({ dataset: 'fresh', table: 't' }, schema)));
      assert.deepEqual(await rowsOf(warehouse, 'SELECT count(*) AS n FROM fresh.t'), [{ n: 0 }]);
    });
  });

  describe('scale', function () {
    this.timeout(120_000);

    it('loads 1,000 files of 1,000 IDs and merges 100k rows', async () => {
      const chunks = join(dir, 'chunks');
      const { mkdirSync } = await import('node:fs');
      mkdirSync(chunks);
      const files: string[] = [];
      for (let f = 0; f < 1000; f++) {
        const ids = Array.from({ length: 1000 }, (_, i) => JSON.stringify({ operation_id: `op${f * 1000 + i}` }));
        files.push(join(chunks, `${String(f).padStart(6, '0')}.ndjson`));
        writeFileSync(files[f], ids.join('\n') + '\n');
      }
      let started = performance.now();
      await warehouse.loadNdjson({ dataset: 'staging', table: 'ids_big' }, files, loadSchema('batch_ids'), { jobId: 'load_big' });
      const loadMs = performance.now() - started;
      assert.deepEqual(await rowsOf(warehouse, 'SELECT count(*) AS n, count(DISTINCT operation_id) AS d FROM staging.ids_big'), [{ n: 1_000_000, d: 1_000_000 }]);

      await warehouse.ensureTable(TARGET, loadSchema('consolidated_table'));
      await warehouse.ensureTable(ENRICHED, ENRICHED_SCHEMA);
      const fill = (offset: number, version: string) =>
        warehouse.query({
          sql: `INSERT INTO staging.enriched_b (operation_id, amount, created_at_us, source_timestamp_us, reconciliation_status, version_ts_us)
SELECT 'op' || (range + CAST($offset AS BIGINT)), 100, epoch_us(TIMESTAMPTZ '2026-01-15 07:00:00+00'), epoch_us(CAST($v AS TIMESTAMPTZ)), 'MATCHED', epoch_us(CAST($v AS TIMESTAMPTZ)) FROM range(100000)`,
          params: { offset: { type: 'INT64', value: offset }, v: { type: 'TIMESTAMP', value: version } },
        });
      await fill(0, '2026-01-15T08:00:00Z');
      await warehouse.query(mergeEnriched(duckdbDialect, { target: TARGET, enriched: ENRICHED }, { batchId: '20260115T080000Z-aaaaaa', consolidatedAt: '2026-01-15T08:00:00Z', created: { from: '2026-01-15T00:00:00.000Z', to: '2026-01-16T00:00:00.000Z' }, force: false }));
      await warehouse.query({ sql: 'DELETE FROM staging.enriched_b', params: {} });
      await fill(50_000, '2026-01-15T09:00:00Z');
      started = performance.now();
      const { dml } = await warehouse.query(mergeEnriched(duckdbDialect, { target: TARGET, enriched: ENRICHED }, { batchId: '20260115T090000Z-bbbbbb', consolidatedAt: '2026-01-15T09:00:00Z', created: { from: '2026-01-15T00:00:00.000Z', to: '2026-01-16T00:00:00.000Z' }, force: false }), { jobId: 'merge_big' });
      const mergeMs = performance.now() - started;
      assert.deepEqual(dml, { inserted: 50_000, updated: 50_000, deleted: 0 });
      console.log(`      loadNdjson 1,000 files x 1,000 IDs: ${Math.round(loadMs)} ms; MERGE of 100k rows into 100k: ${Math.round(mergeMs)} ms`);
      assert.ok(loadMs < 20_000, `load took ${loadMs} ms`);
    });
  });
});
