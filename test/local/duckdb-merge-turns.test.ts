import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDbWarehouse } from '../../shared/local/duckdb-warehouse';

/**
 * Two MERGEs that insert the same new key at the same time: BigQuery serializes them, and the
 * local warehouse must too, or the key ends up twice (DuckDB has no constraint to stop it).
 */
describe('DuckDbWarehouse: concurrent MERGEs into one table', () => {
  let dir: string;
  let warehouse: DuckDbWarehouse;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'merge-turns-'));
    warehouse = await DuckDbWarehouse.open(join(dir, 'w.duckdb'));
    await warehouse.query({ sql: 'CREATE TABLE target (k VARCHAR, v INTEGER)', params: {} });
  });
  after(async () => {
    await warehouse.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const merge = (v: number) => ({
    sql: `MERGE INTO target AS T USING (SELECT 'k1' AS k, CAST($v AS INTEGER) AS v FROM range(200000) LIMIT 1) AS S ON T.k = S.k
WHEN MATCHED AND S.v > T.v THEN UPDATE SET v = S.v WHEN NOT MATCHED THEN INSERT (k, v) VALUES (S.k, S.v)`,
    params: { v: { type: 'INT64' as const, value: v } },
  });

  for (const withJobIds of [false, true]) {
    it(`${withJobIds ? 'with' : 'without'} job IDs: eight at once leave one row holding the highest value`, async () => {
      await warehouse.query({ sql: 'DELETE FROM target', params: {} });
      await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map((v) => warehouse.query(merge(v), withJobIds ? { jobId: `turns_${v}` } : {})));
      const rows = (await warehouse.query({ sql: 'SELECT k, v FROM target', params: {} })).rows;
      assert.deepEqual(rows, [{ k: 'k1', v: 8 }]);
    });
  }
});
