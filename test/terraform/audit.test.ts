import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { AUDIT_FUNCTION_NAME } from '../../functions/registry';
import { VARIABLES } from '../../shared/config';
import { loadSchema } from '../../shared/schema';
import { block, fileArgument, filesetPattern, grantsOf, loadTerraform, resource, soleExpression, targetName, valueOf, variableOf, type Body, type TerraformConfig } from './model';

/** terraform/audit.tf, parsed offline: the audit function, its daily schedule, its table and its grants. */
describe('terraform/audit.tf: the scheduled audit', () => {
  let config: TerraformConfig;
  let fn: Body;
  let job: Body;
  before(async () => {
    config = await loadTerraform();
    fn = resource(config, 'google_cloudfunctions2_function.audit');
    job = resource(config, 'google_cloud_scheduler_job.audit');
  });

  it('declares the audit in its own file, variables and outputs included', () => {
    for (const address of ['google_cloudfunctions2_function.audit', 'google_cloud_scheduler_job.audit', 'google_bigquery_table.audit', 'google_service_account.audit']) {
      assert.equal(config.positions.get(address)?.file, 'audit.tf', address);
    }
    const own = config.files.find((f) => f.name === 'audit.tf')!.json;
    assert.deepEqual(Object.keys(own.variable).sort(), ['audit_days', 'audit_ingress', 'audit_repair', 'audit_schedule', 'audit_table', 'audit_timeout_seconds']);
    assert.deepEqual(Object.keys(own.output).sort(), ['audit_scheduler_job', 'audit_table_id', 'audit_uri']);
  });

  it('deploys the auditConsolidation entry point from the chain\'s source archive, as its own service account', () => {
    const build = block(fn, 'build_config')!;
    assert.equal(build.entry_point, AUDIT_FUNCTION_NAME);
    assert.equal(variableOf(build.runtime), 'function_runtime');
    const storage = block(block(build, 'source'), 'storage_source')!;
    assert.equal(soleExpression(storage.object), 'google_storage_bucket_object.function_source.name');
    const service = block(fn, 'service_config')!;
    assert.equal(targetName(service.service_account_email), 'audit');
    assert.equal(service.max_instance_count, 1, 'two audits at once would replay the same operations twice');
    assert.equal(service.min_instance_count, 0);
    assert.equal(variableOf(service.timeout_seconds), 'audit_timeout_seconds');
    assert.equal(variableOf(service.ingress_settings), 'audit_ingress');
    assert.equal(config.variables.get('audit_ingress')!.default, 'ALLOW_INTERNAL_ONLY', 'its Scheduler job is internal traffic');
  });

  it('ships the pipeline file in the source archive: the audit composes its SELECT at run time', () => {
    const patterns = (config.locals.get('source_patterns') as string[]).map(filesetPattern);
    assert.ok(patterns.some((pattern) => pattern.test('shared/pipeline/consolidation.yaml')));
  });

  it("runs with the chain's configuration plus the audit's, each a variable the code knows, with the code's defaults", () => {
    const environment = String(block(fn, 'service_config')!.environment_variables);
    assert.match(environment, /^\$\{merge\(local\.function_environment, \{/);
    const audit: Record<string, [string, string | undefined]> = {
      AUDIT_TABLE: ['google_bigquery_table.audit.table_id', undefined],
      AUDIT_DAYS: ['tostring(var.audit_days)', 'audit_days'],
      AUDIT_REPAIR: ['tostring(var.audit_repair)', 'audit_repair'],
      PUBLISH_OPS_URL: ['google_cloudfunctions2_function.publish_ops.service_config[0].uri', undefined],
    };
    for (const [name, [expression, variable]] of Object.entries(audit)) {
      assert.ok(name in VARIABLES, `${name} is not a configuration variable`);
      assert.match(environment, new RegExp(`${name}\\s*=\\s*${expression.replace(/[.()[\]]/g, '\\$&')}`), name);
      if (variable) assert.equal(String(config.variables.get(variable)!.default), VARIABLES[name as keyof typeof VARIABLES].default, `var.${variable} and ${name} default alike`);
    }
    assert.equal(config.variables.get('audit_table')!.default, VARIABLES.AUDIT_TABLE.default);
  });

  it('is called daily by Cloud Scheduler: POST {} with an OIDC token of the scheduler account, waiting as long as the function may run, never retried', () => {
    assert.equal(variableOf(job.schedule), 'audit_schedule');
    const [minute, hour, dayOfMonth, month, dayOfWeek] = String(config.variables.get('audit_schedule')!.default).split(/\s+/);
    assert.match(`${minute} ${hour}`, /^\d+ \d+$/, 'once a day: a fixed minute and hour');
    assert.deepEqual([dayOfMonth, month, dayOfWeek], ['*', '*', '*']);
    assert.equal(variableOf(job.time_zone), 'time_zone');
    assert.equal(job.attempt_deadline, '${var.audit_timeout_seconds}s');
    assert.ok(Number(config.variables.get('audit_timeout_seconds')!.default) <= 1800, 'Cloud Scheduler waits at most 30 minutes');
    assert.equal(block(job, 'retry_config')!.retry_count, 0);
    const target = block(job, 'http_target')!;
    assert.equal(target.http_method, 'POST');
    assert.equal(soleExpression(target.uri), 'google_cloudfunctions2_function.audit.service_config[0].uri');
    assert.equal(target.body, '${base64encode("{}")}');
    const oidc = block(target, 'oidc_token')!;
    assert.equal(targetName(oidc.service_account_email), 'scheduler');
    assert.equal(oidc.audience, target.uri);
  });

  it('creates the audit table from the schema file the code writes with, in the consolidated dataset', () => {
    const table = resource(config, 'google_bigquery_table.audit');
    assert.equal(soleExpression(table.dataset_id), 'google_bigquery_dataset.consolidated.dataset_id');
    assert.equal(variableOf(table.table_id), 'audit_table');
    assert.deepEqual(JSON.parse(readFileSync(fileArgument(config, table.schema)!, 'utf8')), loadSchema('consolidation_audit'));
    assert.deepEqual({ ...block(table, 'time_partitioning') }, { type: 'DAY', field: 'audited_at' });
    assert.equal(variableOf(table.deletion_protection), 'protect_data');
  });

  it('lets only the scheduler call the audit, and lets the audit call publishOps only when repairs are on', () => {
    const invokers = grantsOf(config).filter((g) => g.role === 'roles/run.invoker');
    assert.deepEqual(invokers.filter((g) => g.scope === 'service:audit').map((g) => g.principal), ['scheduler']);
    const replays = resource(config, 'google_cloud_run_v2_service_iam_member.audit_invokes_publish_ops');
    assert.equal(replays.count, '${var.audit_repair ? 1 : 0}');
    const precondition = block(block(replays, 'lifecycle'), 'precondition')!;
    assert.equal(precondition.condition, '${var.publish_ops_ingress == "ALLOW_ALL"}', 'an internal-only publishOps refuses calls from another function');
    assert.equal(valueOf(config, '${var.audit_repair}'), false);
  });

  it('never lets the audit write consolidated_table: repairs go through publishOps', () => {
    const writes = grantsOf(config).filter((g) => g.principal === 'audit' && g.scope === 'table:consolidated');
    assert.deepEqual(writes.map((g) => g.role), ['roles/bigquery.dataViewer']);
  });
});
