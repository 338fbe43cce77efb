import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VARIABLES } from '../../shared/config';
import { loadSchema, schemaDir } from '../../shared/schema';
import {
  REPO_ROOT,
  TERRAFORM_DIR,
  block,
  blocks,
  fileArgument,
  loadTerraform,
  resolvePath,
  resource,
  resourcesOfType,
  soleExpression,
  variableOf,
  type TerraformConfig,
} from './model';

/** Terraform variables that name what a configuration variable names, with the same default. */
const MIRRORED: [variable: string, configVariable: keyof typeof VARIABLES][] = [
  ['source_dataset', 'SOURCE_DATASET'],
  ['ussd_table', 'USSD_TABLE'],
  ['transactions_table', 'TRANSACTIONS_TABLE'],
  ['services_table', 'SERVICES_TABLE'],
  ['agents_table', 'AGENTS_TABLE'],
  ['consolidated_dataset', 'CONSOLIDATED_DATASET'],
  ['consolidated_table', 'CONSOLIDATED_TABLE'],
  ['staging_dataset', 'STAGING_DATASET'],
  ['ids_topic', 'IDS_TOPIC'],
  ['batches_topic', 'BATCHES_TOPIC'],
  ['watermark_object', 'WATERMARK_OBJECT'],
];

describe('terraform/: buckets, BigQuery and Pub/Sub', () => {
  let config: TerraformConfig;
  before(async () => {
    config = await loadTerraform();
  });

  for (const [variable, name] of MIRRORED) {
    it(`var.${variable} defaults to ${name}'s default`, () => {
      assert.equal(config.variables.get(variable)?.default, (VARIABLES[name] as { default?: string }).default);
    });
  }

  describe('Cloud Storage', () => {
    it('makes every bucket uniform-access with public access prevention enforced', () => {
      const buckets = resourcesOfType(config, 'google_storage_bucket');
      assert.deepEqual([...buckets.keys()].sort(), ['dataflow', 'source', 'state']);
      for (const [name, bucket] of buckets) {
        assert.equal(bucket.uniform_bucket_level_access, true, `${name}: uniform bucket-level access`);
        assert.equal(bucket.public_access_prevention, 'enforced', `${name}: public access prevention`);
        assert.equal(variableOf(bucket.location), 'region', `${name}: in the functions' region`);
      }
    });

    it('versions the state bucket and keeps its content unless protection is turned off', () => {
      const state = resource(config, 'google_storage_bucket.state');
      assert.equal(block(state, 'versioning')?.enabled, true);
      assert.equal(state.force_destroy, '${!var.protect_data}');
      assert.equal(config.variables.get('protect_data')!.default, true);
    });

    it('deletes old batches with lifecycle rules that touch batches/ only', () => {
      const rules = blocks(resource(config, 'google_storage_bucket.state'), 'lifecycle_rule');
      assert.ok(rules.length >= 1);
      let ageRule = false;
      for (const rule of rules) {
        assert.equal(block(rule, 'action')?.type, 'Delete');
        const condition = block(rule, 'condition')!;
        assert.deepEqual(condition.matches_prefix, ['batches/'], 'every rule is restricted to batches/, so the watermark and any other top-level object (lease.json) stay');
        if (variableOf(condition.age) === 'batch_retention_days') ageRule = true;
      }
      assert.ok(ageRule, 'no rule deletes batches after batch_retention_days');
      const watermark = block(config.variables.get('watermark_object'), 'validation')!;
      assert.match(String(watermark.condition), /startswith\(var\.watermark_object, "batches\/"\)/, 'the watermark must not be placed where the rule deletes');
    });

    it('uploads the repository pipeline file where PIPELINE_FILE expects it', () => {
      const pipeline = resource(config, 'google_storage_bucket_object.pipeline');
      assert.equal(soleExpression(pipeline.bucket), 'google_storage_bucket.state.name');
      assert.equal(resolvePath(config, pipeline.source), join(REPO_ROOT, 'shared', 'pipeline', 'consolidation.yaml'));
      // The configuration's own default for PIPELINE_FILE is gs://<STATE_BUCKET>/<this name>.
      assert.match(VARIABLES.PIPELINE_FILE.description, new RegExp(`gs://<STATE_BUCKET>/${pipeline.name.replace('.', '\\.')}`));
    });

    it('gives Dataflow its own bucket for temp and staging files, cleaned after a week', () => {
      const dataflow = resource(config, 'google_storage_bucket.dataflow');
      const rule = block(dataflow, 'lifecycle_rule')!;
      assert.equal(block(rule, 'condition')!.age, 7);
      assert.equal(block(dataflow, 'soft_delete_policy')!.retention_duration_seconds, 0);
    });
  });

  describe('BigQuery', () => {
    it('creates consolidated_table from the schema file the code loads', () => {
      const table = resource(config, 'google_bigquery_table.consolidated');
      assert.equal(fileArgument(config, table.schema), join(schemaDir(), 'consolidated_table.json'));
      assert.deepEqual(JSON.parse(readFileSync(fileArgument(config, table.schema)!, 'utf8')), loadSchema('consolidated_table'));
      assert.equal(variableOf(table.table_id), 'consolidated_table');
      assert.equal(soleExpression(table.dataset_id), 'google_bigquery_dataset.consolidated.dataset_id');
    });

    it("partitions it by day on the operation's creation date and clusters it on operation_id", () => {
      const table = resource(config, 'google_bigquery_table.consolidated');
      const partitioning = block(table, 'time_partitioning')!;
      assert.deepEqual(partitioning, { type: 'DAY', field: 'created_at' });
      assert.deepEqual(table.clustering, ['operation_id']);
      const fields = new Map(loadSchema('consolidated_table').map((field) => [field.name, field]));
      assert.equal(fields.get('created_at')?.type, 'TIMESTAMP');
      assert.equal(fields.get('created_at')?.mode, 'REQUIRED');
      assert.equal(fields.get('operation_id')?.mode, 'REQUIRED');
    });

    it('protects it from deletion by default', () => {
      const table = resource(config, 'google_bigquery_table.consolidated');
      assert.equal(variableOf(table.deletion_protection), 'protect_data');
      assert.equal(config.variables.get('protect_data')!.default, true);
      assert.equal(resource(config, 'google_bigquery_dataset.consolidated').delete_contents_on_destroy, '${!var.protect_data}');
    });

    it('gives the staging dataset a default table expiration', () => {
      const staging = resource(config, 'google_bigquery_dataset.staging');
      assert.equal(staging.default_table_expiration_ms, '${var.staging_table_expiration_hours * 3600 * 1000}');
      assert.ok(Number(config.variables.get('staging_table_expiration_hours')!.default) >= 1);
      assert.equal(variableOf(staging.dataset_id), 'staging_dataset');
    });

    it('keeps every dataset in bigquery_location', () => {
      for (const [name, dataset] of resourcesOfType(config, 'google_bigquery_dataset')) assert.equal(variableOf(dataset.location), 'bigquery_location', name);
    });

    it('creates source tables only when asked, from the schema files the code loads', () => {
      const dataset = resource(config, 'google_bigquery_dataset.source');
      assert.equal(dataset.count, '${var.create_source_tables ? 1 : 0}');
      const tables = resource(config, 'google_bigquery_table.source');
      assert.equal(tables.for_each, '${var.create_source_tables ? local.source_tables : {}}');
      assert.equal(tables.schema, '${file("${local.schema_dir}/${each.value.schema}.json")}');
      assert.equal(config.variables.get('create_source_tables')!.default, false);
      const sources = config.locals.get('source_tables') as Record<string, { table: string; schema: string }>;
      assert.deepEqual(
        Object.values(sources)
          .map((s) => [variableOf(s.table), s.schema])
          .sort(),
        [
          ['agents_table', 'agents'],
          ['services_table', 'services'],
          ['transactions_table', 'transactiongu'],
          ['ussd_table', 'ussd_operations'],
        ],
      );
      for (const { schema } of Object.values(sources)) {
        const path = resolvePath(config, `\${local.schema_dir}/${schema}.json`)!;
        assert.equal(path, join(schemaDir(), `${schema}.json`));
        assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), loadSchema(schema as Parameters<typeof loadSchema>[0]));
      }
    });

    it('creates no other table', () => {
      // `audit`: the audit table (terraform/audit.tf, test/terraform/audit.test.ts).
      assert.deepEqual([...resourcesOfType(config, 'google_bigquery_table').keys()].sort(), ['audit', 'consolidated', 'source']);
    });
  });

  describe('Pub/Sub', () => {
    it('creates the IDs, batches and dead-letter topics under the configured names', () => {
      const topics = resourcesOfType(config, 'google_pubsub_topic');
      assert.deepEqual([...topics.keys()].sort(), ['batches', 'dead_letter', 'ids']);
      assert.equal(variableOf(topics.get('ids')!.name), 'ids_topic');
      assert.equal(variableOf(topics.get('batches')!.name), 'batches_topic');
      assert.equal(variableOf(topics.get('dead_letter')!.name), 'dead_letter_topic');
    });

    it('keeps dead letters a week on a subscription to inspect them', () => {
      const inspect = resource(config, 'google_pubsub_subscription.dead_letter_inspect');
      assert.equal(soleExpression(inspect.topic), 'google_pubsub_topic.dead_letter.id');
      assert.equal(inspect.message_retention_duration, '604800s');
      assert.equal(block(inspect, 'expiration_policy')!.ttl, '');
    });

    it("sets the dead-letter policy on each event trigger's subscription", () => {
      const policy = resource(config, 'terraform_data.dead_letter_policy');
      const targets = policy.for_each as Record<string, { trigger: string; updated: string }>;
      assert.deepEqual(Object.keys(targets).sort(), ['collectIds', 'launchDataflow', 'mergeOnComplete']);
      const names: Record<string, string> = { collectIds: 'collect_ids', launchDataflow: 'launch_dataflow', mergeOnComplete: 'merge_on_complete' };
      for (const [entryPoint, target] of Object.entries(targets)) {
        assert.equal(soleExpression(target.trigger), `google_cloudfunctions2_function.${names[entryPoint]}.event_trigger[0].trigger`);
        assert.equal(soleExpression(target.updated), `google_cloudfunctions2_function.${names[entryPoint]}.update_time`);
      }
      const exec = block(policy.provisioner, 'local-exec')!;
      assert.equal(soleExpression(exec.environment.DEAD_LETTER_TOPIC), 'google_pubsub_topic.dead_letter.id');
      assert.equal(soleExpression(exec.environment.MAX_DELIVERY_ATTEMPTS), 'tostring(var.max_delivery_attempts)');
      assert.equal(soleExpression(exec.environment.PUBSUB_SERVICE_AGENT), 'local.pubsub_service_agent');
      assert.deepEqual(policy.triggers_replace, ['${each.value.trigger}', '${each.value.updated}', '${google_pubsub_topic.dead_letter.id}', '${var.max_delivery_attempts}']);
      assert.equal(config.locals.get('pubsub_service_agent'), 'service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com');
    });
  });

  describe('scripts/attach-dead-letter.sh, run against a stand-in gcloud', () => {
    let bin: string;
    const script = join(TERRAFORM_DIR, 'scripts', 'attach-dead-letter.sh');
    const environment = {
      TRIGGER: 'projects/ussd-prod/locations/europe-west1/triggers/ussd-collect-ids-123456',
      DEAD_LETTER_TOPIC: 'projects/ussd-prod/topics/consolidation-dead-letter',
      MAX_DELIVERY_ATTEMPTS: '10',
      PUBSUB_SERVICE_AGENT: 'service-123456789@gcp-sa-pubsub.iam.gserviceaccount.com',
      RETRY_SECONDS: '0',
    };
    beforeEach(() => {
      bin = mkdtempSync(join(tmpdir(), 'fake-gcloud-'));
      // Records its arguments, one call per line; `eventarc triggers describe` prints $SUBSCRIPTION.
      writeFileSync(join(bin, 'gcloud'), '#!/bin/bash\necho "$*" >> "$CALLS"\nif [[ "$1 $2 $3" == "eventarc triggers describe" ]]; then printf "%s\\n" "$SUBSCRIPTION"; fi\n');
      chmodSync(join(bin, 'gcloud'), 0o755);
    });
    afterEach(() => rmSync(bin, { recursive: true, force: true }));

    const run = (overrides: Record<string, string>) => {
      const calls = join(bin, 'calls');
      writeFileSync(calls, '');
      const result = spawnSync('/bin/bash', [script], { env: { PATH: `${bin}:/usr/bin:/bin`, CALLS: calls, ...environment, ...overrides }, encoding: 'utf8' });
      return { ...result, calls: readFileSync(calls, 'utf8').trim().split('\n').filter(Boolean) };
    };

    it("sets the dead-letter topic on the trigger's subscription and lets the Pub/Sub agent acknowledge there", () => {
      const result = run({ SUBSCRIPTION: 'projects/ussd-prod/subscriptions/eventarc-europe-west1-ussd-collect-ids-123456-sub-042' });
      assert.equal(result.status, 0, result.stderr);
      assert.deepEqual(result.calls, [
        'eventarc triggers describe ussd-collect-ids-123456 --project=ussd-prod --location=europe-west1 --format=value(transport.pubsub.subscription)',
        'pubsub subscriptions update projects/ussd-prod/subscriptions/eventarc-europe-west1-ussd-collect-ids-123456-sub-042 --project=ussd-prod --dead-letter-topic=projects/ussd-prod/topics/consolidation-dead-letter --max-delivery-attempts=10 --quiet',
        'pubsub subscriptions add-iam-policy-binding projects/ussd-prod/subscriptions/eventarc-europe-west1-ussd-collect-ids-123456-sub-042 --project=ussd-prod --member=serviceAccount:service-123456789@gcp-sa-pubsub.iam.gserviceaccount.com --role=roles/pubsub.subscriber --quiet',
      ]);
    });

    it('warns and changes nothing when the trigger has no subscription', () => {
      const result = run({ SUBSCRIPTION: '' });
      assert.equal(result.status, 0);
      assert.match(result.stderr, /WARNING: .* no Pub\/Sub subscription/);
      assert.ok(result.calls.length > 1 && result.calls.every((call) => call.startsWith('eventarc triggers describe')), 'it looks again, and only looks');
    });

    for (const [what, overrides, message] of [
      ['a malformed trigger name', { TRIGGER: 'ussd-collect-ids' }, /not an Eventarc trigger name/],
      ['too few delivery attempts', { MAX_DELIVERY_ATTEMPTS: '3' }, /MAX_DELIVERY_ATTEMPTS must be 5 to 100/],
      ['a missing topic', { DEAD_LETTER_TOPIC: '' }, /DEAD_LETTER_TOPIC is required/],
    ] as const) {
      it(`refuses ${what} before calling gcloud`, () => {
        const result = run({ SUBSCRIPTION: 'projects/p/subscriptions/s', ...overrides });
        assert.notEqual(result.status, 0);
        assert.match(result.stderr, message);
        assert.deepEqual(result.calls, []);
      });
    }
  });
});
