import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
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

    it('deletes old batches, and no live object outside batches/', () => {
      const rules = blocks(resource(config, 'google_storage_bucket.state'), 'lifecycle_rule');
      assert.ok(rules.length >= 1);
      let ageRule = false;
      for (const rule of rules) {
        assert.equal(block(rule, 'action')?.type, 'Delete');
        const condition = block(rule, 'condition')!;
        if (condition.with_state !== 'ARCHIVED') assert.deepEqual(condition.matches_prefix, ['batches/'], 'a rule deleting live objects is restricted to batches/, so the watermark and the lease stay');
        if (variableOf(condition.age) === 'batch_retention_days') ageRule = true;
      }
      assert.ok(ageRule, 'no rule deletes batches after batch_retention_days');
      const watermark = block(config.variables.get('watermark_object'), 'validation')!;
      assert.match(String(watermark.condition), /startswith\(var\.watermark_object, "batches\/"\)/, 'the watermark must not be placed where the rule deletes');
    });

    it('deletes the replaced versions of every state object (watermark, lease, markers) after noncurrent_version_days', () => {
      const rules = blocks(resource(config, 'google_storage_bucket.state'), 'lifecycle_rule');
      const everywhere = rules.filter((rule) => block(rule, 'condition')!.with_state === 'ARCHIVED' && block(rule, 'condition')!.matches_prefix === undefined);
      assert.equal(everywhere.length, 1, 'one rule for the noncurrent versions of the whole bucket');
      assert.equal(variableOf(block(everywhere[0], 'condition')!.days_since_noncurrent_time), 'noncurrent_version_days');
      assert.equal(block(everywhere[0], 'action')!.type, 'Delete');
      assert.ok(Number(config.variables.get('noncurrent_version_days')!.default) >= 1);
    });

    it('uploads the repository pipeline file to the source bucket, the one the functions cannot write, and points PIPELINE_FILE at it', () => {
      const pipeline = resource(config, 'google_storage_bucket_object.pipeline');
      assert.equal(soleExpression(pipeline.bucket), 'google_storage_bucket.source.name');
      assert.equal(resolvePath(config, pipeline.source), join(REPO_ROOT, 'shared', 'pipeline', 'consolidation.yaml'));
      const env = config.locals.get('function_environment') as Record<string, string>;
      assert.equal(env.PIPELINE_FILE, 'gs://${google_storage_bucket_object.pipeline.bucket}/${google_storage_bucket_object.pipeline.name}');
    });

    it('uploads a new source archive before deleting the old one', () => {
      const archive = resource(config, 'google_storage_bucket_object.function_source');
      assert.equal(block(archive, 'lifecycle')?.create_before_destroy, true);
    });
  });

  describe('Artifact Registry', () => {
    it('keeps the function images in a repository with cleanup policies, the newest of each function always kept', () => {
      const repository = resource(config, 'google_artifact_registry_repository.functions');
      assert.equal(repository.format, 'DOCKER');
      assert.equal(variableOf(repository.location), 'region');
      assert.equal(repository.cleanup_policy_dry_run, false, 'a dry run deletes nothing');
      const policies = blocks(repository, 'cleanup_policies');
      const keep = policies.find((p) => p.action === 'KEEP')!;
      assert.equal(variableOf(block(keep, 'most_recent_versions')!.keep_count), 'images_kept');
      const remove = policies.find((p) => p.action === 'DELETE')!;
      assert.equal(block(remove, 'condition')!.tag_state, 'ANY');
      assert.equal(block(remove, 'condition')!.older_than, '${var.image_retention_days * 86400}s');
      assert.ok(Number(config.variables.get('images_kept')!.default) >= 1);
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

    it('lays the test source tables out as the source contract says (issue 10)', () => {
      const tables = resource(config, 'google_bigquery_table.source');
      const partitioning = tables.dynamic?.time_partitioning?.[0];
      assert.equal(partitioning.for_each, '${each.value.partition_field == null ? [] : [each.value.partition_field]}');
      assert.deepEqual(partitioning.content[0], { type: 'DAY', field: '${time_partitioning.value}' });
      assert.equal(tables.clustering, '${length(each.value.clustering) > 0 ? each.value.clustering : null}');
      const sources = config.locals.get('source_tables') as Record<string, { schema: string; partition_field: string | null; clustering: string[] }>;
      const layout = Object.fromEntries(Object.values(sources).map((s) => [s.schema, { partition: s.partition_field, clustering: s.clustering }]));
      assert.deepEqual(layout, {
        ussd_operations: { partition: 'source_timestamp', clustering: ['operation_id'] },
        transactiongu: { partition: 'updated_at', clustering: ['transaction_id'] },
        services: { partition: null, clustering: [] },
        agents: { partition: null, clustering: [] },
      });
      for (const { schema, partition_field, clustering } of Object.values(sources)) {
        const fields = new Map(loadSchema(schema as Parameters<typeof loadSchema>[0]).map((f) => [f.name, f]));
        if (partition_field) assert.equal(fields.get(partition_field)?.type, 'TIMESTAMP', `${schema}.${partition_field} must be a TIMESTAMP to partition by day`);
        for (const column of clustering) assert.ok(fields.has(column), `${schema} has no column ${column}`);
        assert.ok(clustering.length <= 4);
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

    describe('the push subscriptions of collectIds and launchDataflow', () => {
      const push = () => resource(config, 'google_pubsub_subscription.push');
      const targets = () => push().for_each as Record<string, { topic: string; uri: string; timeout: string }>;
      const FUNCTIONS: Record<string, { name: string; topic: string }> = { collectIds: { name: 'collect_ids', topic: 'ids' }, launchDataflow: { name: 'launch_dataflow', topic: 'batches' } };

      it('deliver each topic to its function, with an OIDC token of the triggers account for the function URL', () => {
        assert.deepEqual(Object.keys(targets()).sort(), Object.keys(FUNCTIONS).sort());
        for (const [entryPoint, { name, topic }] of Object.entries(FUNCTIONS)) {
          const target = targets()[entryPoint];
          assert.equal(target.topic, `\${google_pubsub_topic.${topic}}`);
          assert.equal(target.uri, `\${google_cloudfunctions2_function.${name}.service_config[0].uri}`);
          assert.equal(target.timeout, `\${google_cloudfunctions2_function.${name}.service_config[0].timeout_seconds}`);
        }
        assert.equal(push().topic, '${each.value.topic.id}');
        const config_ = block(push(), 'push_config')!;
        assert.equal(config_.push_endpoint, '${each.value.uri}/projects/${var.project_id}/topics/${each.value.topic.name}', 'the path names the topic, which the Functions Framework reads into the event source');
        const oidc = block(config_, 'oidc_token')!;
        assert.equal(soleExpression(oidc.service_account_email), 'google_service_account.triggers.email');
        assert.equal(oidc.audience, '${each.value.uri}');
      });

      it('dead-letter after max_delivery_attempts, retry with backoff, never expire', () => {
        const dead = block(push(), 'dead_letter_policy')!;
        assert.equal(soleExpression(dead.dead_letter_topic), 'google_pubsub_topic.dead_letter.id');
        assert.equal(variableOf(dead.max_delivery_attempts), 'max_delivery_attempts');
        const retry = block(push(), 'retry_policy')!;
        assert.match(retry.minimum_backoff, /^\d+s$/);
        assert.match(retry.maximum_backoff, /^\d+s$/);
        assert.ok(parseInt(retry.minimum_backoff, 10) <= parseInt(retry.maximum_backoff, 10) && parseInt(retry.maximum_backoff, 10) <= 600);
        assert.equal(block(push(), 'expiration_policy')!.ttl, '');
      });

      it("give the function its whole timeout before a delivery counts as failed", () => {
        assert.equal(push().ack_deadline_seconds, '${min(600, each.value.timeout + 30)}');
        for (const { name } of Object.values(FUNCTIONS)) {
          const timeout = Number(block(resource(config, `google_cloudfunctions2_function.${name}`), 'service_config')!.timeout_seconds);
          assert.ok(Math.min(600, timeout + 30) >= timeout, `${name}: its timeout ${timeout}s exceeds the longest ack deadline`);
        }
      });

      it("let the Pub/Sub agent acknowledge there (moving a message to the dead-letter topic needs it) and publish to the dead-letter topic", () => {
        const ack = resource(config, 'google_pubsub_subscription_iam_member.pubsub_agent_acks_dead_letters');
        assert.equal(ack.for_each, '${google_pubsub_subscription.push}');
        assert.equal(ack.role, 'roles/pubsub.subscriber');
        assert.equal(ack.member, 'serviceAccount:${local.pubsub_service_agent}');
        const publish = resource(config, 'google_pubsub_topic_iam_member.pubsub_agent_publishes_dead_letters');
        assert.equal(soleExpression(publish.topic), 'google_pubsub_topic.dead_letter.name');
      });

      it('leave nothing to a script: no Eventarc trigger on the two topics, no provisioner', () => {
        for (const { name } of Object.values(FUNCTIONS)) assert.equal(block(resource(config, `google_cloudfunctions2_function.${name}`), 'event_trigger'), undefined);
        assert.ok(!existsSync(join(TERRAFORM_DIR, 'scripts', 'attach-dead-letter.sh')));
      });
    });
  });
});
