import assert from 'node:assert/strict';
import { DuckDbWarehouse } from '../../shared/local/duckdb-warehouse';
import type { Row } from '../../shared/ports';

/**
 * `MERGE ... RETURNING merge_action` is the DuckDB dialect's way of asking for a MERGE's counts.
 * The warehouse runs such a MERGE without its RETURNING clause and counts it from the target's
 * size (a MERGE that may delete is still counted from its returned actions): the counts and the
 * table must be what the returned actions would have given, inside a job or not.
 */
describe('DuckDbWarehouse: counts of a MERGE ... RETURNING merge_action', () => {
  let warehouse: DuckDbWarehouse;

  const rows = async (sql: string): Promise<Row[]> => (await warehouse.query({ sql, params: {} })).rows;
  const target = () => rows('SELECT id, v FROM "s"."target" ORDER BY id');

  beforeEach(async () => {
    warehouse = await DuckDbWarehouse.open(':memory:');
    await warehouse.ensureSchema('s');
    await rows('CREATE TABLE "s"."target" (id INTEGER, v VARCHAR)');
    await rows(`INSERT INTO "s"."target" VALUES (1, 'a'), (2, 'b'), (3, 'c')`);
    await rows('CREATE TABLE "s"."source" (id INTEGER, v VARCHAR)');
    // 1 unchanged, 2 and 3 changed, 4 and 5 new
    await rows(`INSERT INTO "s"."source" VALUES (1, 'a'), (2, 'B'), (3, 'C'), (4, 'd'), (5, 'e')`);
  });
  afterEach(async () => {
    await warehouse.close();
  });

  const UPSERT = `MERGE INTO "s"."target" AS T
USING "s"."source" AS S
ON T.id = S.id
WHEN MATCHED AND T.v IS DISTINCT FROM S.v THEN UPDATE SET v = S.v
WHEN NOT MATCHED THEN INSERT (id, v) VALUES (S.id, S.v)
RETURNING merge_action`;
  const UPSERTED = [
    { id: 1, v: 'a' },
    { id: 2, v: 'B' },
    { id: 3, v: 'C' },
    { id: 4, v: 'd' },
    { id: 5, v: 'e' },
  ];

  it('counts inserted and updated rows, not the unchanged one, outside a job', async () => {
    const result = await warehouse.query({ sql: UPSERT, params: {} });
    assert.deepEqual(result, { rows: [], dml: { inserted: 2, updated: 2, deleted: 0 } });
    assert.deepEqual(await target(), UPSERTED);
  });

  it('counts the same inside a job, and a repeated job ID returns the recorded counts without running', async () => {
    const first = await warehouse.query({ sql: UPSERT, params: {} }, { jobId: 'merge_counts_1' });
    assert.deepEqual(first.dml, { inserted: 2, updated: 2, deleted: 0 });
    await rows(`INSERT INTO "s"."source" VALUES (6, 'f')`);
    const again = await warehouse.query({ sql: UPSERT, params: {} }, { jobId: 'merge_counts_1' });
    assert.deepEqual(again.dml, first.dml);
    assert.deepEqual(await target(), UPSERTED);
  });

  it('counts nothing when nothing changes', async () => {
    await warehouse.query({ sql: UPSERT, params: {} });
    assert.deepEqual((await warehouse.query({ sql: UPSERT, params: {} })).dml, { inserted: 0, updated: 0, deleted: 0 });
  });

  it('binds the parameters of the MERGE', async () => {
    const sql = UPSERT.replace('ON T.id = S.id', 'ON T.id = S.id AND S.id <= CAST($max_id AS BIGINT)').replace('WHEN NOT MATCHED THEN', 'WHEN NOT MATCHED AND S.id <= CAST($max_id AS BIGINT) THEN');
    const result = await warehouse.query({ sql, params: { max_id: { type: 'INT64', value: 4 } } });
    assert.deepEqual(result.dml, { inserted: 1, updated: 2, deleted: 0 });
  });

  it('counts a MERGE that deletes from its returned actions', async () => {
    const sql = `MERGE INTO "s"."target" AS T
USING "s"."source" AS S
ON T.id = S.id
WHEN MATCHED AND S.v = 'C' THEN DELETE
WHEN MATCHED AND T.v IS DISTINCT FROM S.v THEN UPDATE SET v = S.v
WHEN NOT MATCHED THEN INSERT (id, v) VALUES (S.id, S.v)
RETURNING merge_action`;
    assert.deepEqual((await warehouse.query({ sql, params: {} })).dml, { inserted: 2, updated: 1, deleted: 1 });
    assert.deepEqual(await target(), [
      { id: 1, v: 'a' },
      { id: 2, v: 'B' },
      { id: 4, v: 'd' },
      { id: 5, v: 'e' },
    ]);
  });

  it('changes nothing when the MERGE fails half way, and the warehouse keeps working', async () => {
    // The updates would succeed; the inserts fail on a value that is not a number.
    const failing = UPSERT.replace('VALUES (S.id, S.v)', 'VALUES (S.id, CAST(CAST(S.v AS INTEGER) AS VARCHAR))');
    await assert.rejects(warehouse.query({ sql: failing, params: {} }), /DuckDB query failed/);
    assert.deepEqual(await target(), [
      { id: 1, v: 'a' },
      { id: 2, v: 'b' },
      { id: 3, v: 'c' },
    ]);
    assert.deepEqual((await warehouse.query({ sql: UPSERT, params: {} })).dml, { inserted: 2, updated: 2, deleted: 0 });
  });
});
