import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VARIABLES, loadConfig } from '../../shared/config';
import { loadSchema, schemaDir } from '../../shared/schema';
import { block, fileArgument, loadTerraform, resource, soleExpression, variableOf, type TerraformConfig } from './model';

describe('terraform/quarantine.tf: the quarantine table', () => {
  let config: TerraformConfig;
  before(async () => {
    config = await loadTerraform();
  });

  it('creates it from the schema file the code loads, next to consolidated_table', () => {
    const table = resource(config, 'google_bigquery_table.quarantine');
    assert.equal(fileArgument(config, table.schema), join(schemaDir(), 'quarantine.json'));
    assert.deepEqual(JSON.parse(readFileSync(fileArgument(config, table.schema)!, 'utf8')), loadSchema('quarantine'));
    assert.equal(soleExpression(table.dataset_id), 'google_bigquery_dataset.consolidated.dataset_id');
  });

  it('names it as the functions look for it (QUARANTINE_TABLE, left to its default in CONSOLIDATED_DATASET)', () => {
    const table = resource(config, 'google_bigquery_table.quarantine');
    assert.equal(table.table_id, VARIABLES.QUARANTINE_TABLE.default);
    assert.deepEqual(loadConfig({}).tables.quarantine, { dataset: VARIABLES.CONSOLIDATED_DATASET.default, table: table.table_id });
  });

  it('partitions it by day on first_seen_at and clusters it on reason and batch_id, the columns its readers filter on', () => {
    const table = resource(config, 'google_bigquery_table.quarantine');
    assert.deepEqual(block(table, 'time_partitioning'), { type: 'DAY', field: 'first_seen_at' });
    assert.deepEqual(table.clustering, ['reason', 'batch_id']);
    const fields = new Map(loadSchema('quarantine').map((f) => [f.name, f]));
    for (const name of ['first_seen_at', 'reason', 'batch_id']) assert.equal(fields.get(name)?.mode, 'REQUIRED', name);
    assert.equal(fields.get('first_seen_at')?.type, 'TIMESTAMP');
  });

  it('protects it like consolidated_table', () => {
    assert.equal(variableOf(resource(config, 'google_bigquery_table.quarantine').deletion_protection), 'protect_data');
  });

  it('lets publishOps write it and read the reference tables, on those tables only', () => {
    const writes = resource(config, 'google_bigquery_table_iam_member.publish_ops_writes_quarantine');
    assert.equal(writes.role, 'roles/bigquery.dataEditor');
    assert.equal(soleExpression(writes.table_id), 'google_bigquery_table.quarantine.table_id');
    assert.equal(writes.member, 'serviceAccount:${google_service_account.publish_ops.email}');
    for (const [name, variable] of [['publish_ops_reads_services', 'services_table'], ['publish_ops_reads_agents', 'agents_table']]) {
      const grant = resource(config, `google_bigquery_table_iam_member.${name}`);
      assert.equal(grant.role, 'roles/bigquery.dataViewer');
      assert.equal(variableOf(grant.table_id), variable);
    }
  });
});
