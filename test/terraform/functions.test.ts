import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { VARIABLES, loadConfig } from '../../shared/config';
import { AUDIT_FUNCTION_NAME, FUNCTION_NAMES } from '../../functions/registry';
import {
  REPO_ROOT,
  block,
  blocks,
  filesetPattern,
  loadTerraform,
  resource,
  resourcesOfType,
  soleExpression,
  targetName,
  valueOf,
  variableOf,
  type Body,
  type TerraformConfig,
} from './model';

/**
 * How each entry point is invoked: publishOps by Cloud Scheduler over HTTP, the two Pub/Sub
 * functions by a Terraform-managed push subscription on their topic (pubsub.tf), mergeOnComplete
 * by an Eventarc trigger on Dataflow's job events.
 */
const TRIGGERS: Record<string, { eventType?: string; push?: string; retry?: string }> = {
  publishOps: {},
  collectIds: { push: 'ids' },
  launchDataflow: { push: 'batches' },
  mergeOnComplete: { eventType: 'google.cloud.dataflow.job.v1beta3.statusChanged', retry: 'RETRY_POLICY_RETRY' },
};

/** Configuration variables the deployed functions leave to their defaults (the local stack's own). */
const LOCAL_ONLY = ['STATE_DIR', 'WAREHOUSE_FILE', 'LOCAL_BUS_MAX_ATTEMPTS', 'LOCAL_BUS_CONCURRENCY'];

function listFiles(dir: string, skip: Set<string>): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (skip.has(name)) return [];
    return statSync(path).isDirectory() ? listFiles(path, skip) : [relative(REPO_ROOT, path).split(sep).join('/')];
  });
}

describe('terraform/: the four functions, their configuration and their source', () => {
  let config: TerraformConfig;
  let functions: Map<string, Body>;
  const byEntryPoint = new Map<string, { name: string; body: Body }>();
  before(async () => {
    config = await loadTerraform();
    functions = resourcesOfType(config, 'google_cloudfunctions2_function');
    for (const [name, body] of functions) byEntryPoint.set(block(body, 'build_config')!.entry_point, { name, body });
  });

  it('deploys exactly the four entry points the package registers', () => {
    // And the audit's (terraform/audit.tf, test/terraform/audit.test.ts).
    assert.equal(functions.size, 5);
    assert.deepEqual([...byEntryPoint.keys()].sort(), [...FUNCTION_NAMES, AUDIT_FUNCTION_NAME].sort());
  });

  for (const entryPoint of FUNCTION_NAMES) {
    describe(entryPoint, () => {
      const fn = () => byEntryPoint.get(entryPoint)!;

      it('is triggered as the chain expects', () => {
        const expected = TRIGGERS[entryPoint];
        const trigger = block(fn().body, 'event_trigger');
        const push = (resource(config, 'google_pubsub_subscription.push').for_each as Record<string, { topic: string; uri: string }>)[entryPoint];
        if (!expected.eventType) {
          assert.equal(trigger, undefined, `${entryPoint} has no event trigger: ${expected.push ? 'a push subscription delivers to it' : 'it is HTTP-triggered'}`);
          if (expected.push) {
            assert.equal(soleExpression(push?.topic), `google_pubsub_topic.${expected.push}`);
            assert.equal(soleExpression(push?.uri), `google_cloudfunctions2_function.${fn().name}.service_config[0].uri`);
          } else assert.equal(push, undefined);
          return;
        }
        assert.equal(push, undefined);
        assert.ok(trigger, `${entryPoint} has no event trigger`);
        assert.equal(trigger.event_type, expected.eventType);
        assert.equal(trigger.retry_policy, expected.retry);
        assert.equal(trigger.trigger_region, '${var.region}');
        assert.equal(targetName(trigger.service_account_email), 'triggers', 'triggers deliver as the triggers service account');
        assert.equal(trigger.pubsub_topic, undefined);
      });

      it('runs a supported Node.js from the source archive, built into the managed image repository', () => {
        const build = block(fn().body, 'build_config')!;
        assert.equal(variableOf(build.runtime), 'function_runtime');
        assert.equal(soleExpression(build.docker_repository), 'google_artifact_registry_repository.functions.id');
        const storage = block(block(build, 'source'), 'storage_source')!;
        assert.equal(soleExpression(storage.bucket), 'google_storage_bucket.source.name');
        assert.equal(soleExpression(storage.object), 'google_storage_bucket_object.function_source.name');
      });

      it('runs as its own service account, with the whole configuration', () => {
        const service = block(fn().body, 'service_config')!;
        assert.equal(targetName(service.service_account_email), fn().name, `${entryPoint} should run as google_service_account.${fn().name}`);
        assert.equal(soleExpression(service.environment_variables), 'local.function_environment');
      });

      it('sets memory, timeout and instance bounds within the platform limits', () => {
        const service = block(fn().body, 'service_config')!;
        assert.match(String(service.available_memory), /^\d+(Mi|Gi)$/);
        const timeout = Number(valueOf(config, service.timeout_seconds));
        assert.ok(timeout >= 30 && timeout <= (entryPoint === 'publishOps' ? 3600 : 540), `timeout ${timeout}`);
        assert.ok(Number(service.max_instance_count) >= 1);
        assert.equal(service.min_instance_count, 0, 'scale to zero between cycles');
        if (entryPoint !== 'publishOps') assert.equal(service.ingress_settings, 'ALLOW_INTERNAL_ONLY');
        else assert.equal(variableOf(service.ingress_settings), 'publish_ops_ingress');
      });
    });
  }

  it('runs one publishOps at a time, no longer than Cloud Scheduler waits', () => {
    const service = block(byEntryPoint.get('publishOps')!.body, 'service_config')!;
    assert.equal(service.max_instance_count, 1);
    const job = resource(config, 'google_cloud_scheduler_job.publish_ops');
    assert.equal(job.attempt_deadline, '${var.publish_ops_timeout_seconds}s');
    assert.equal(variableOf(service.timeout_seconds), 'publish_ops_timeout_seconds');
    assert.ok(Number(config.variables.get('publish_ops_timeout_seconds')!.default) <= 1800);
  });

  describe('the runtime variable', () => {
    const pattern = () => {
      const condition = String(block(config.variables.get('function_runtime'), 'validation')!.condition);
      return new RegExp(/regex\("([^"]+)"/.exec(condition)![1]);
    };
    // Node.js 20 was decommissioned on Cloud Run functions on 2026-10-30.
    for (const [runtime, accepted] of [['nodejs22', true], ['nodejs24', true], ['nodejs26', true], ['nodejs30', true], ['nodejs100', true], ['nodejs20', false], ['nodejs21', false], ['nodejs18', false], ['nodejs8', false], ['python312', false]] as const) {
      it(`${accepted ? 'accepts' : 'refuses'} ${runtime}`, () => assert.equal(pattern().test(runtime), accepted));
    }
    it('defaults to an accepted runtime', () => assert.ok(pattern().test(String(config.variables.get('function_runtime')!.default))));
  });

  describe('the environment: shared/config.ts VARIABLES', () => {
    const environment = () => config.locals.get('function_environment') as Record<string, string>;

    it('sets only variables the configuration knows, and selects the Google Cloud backend', () => {
      for (const name of Object.keys(environment())) assert.ok(name in VARIABLES, `${name} is not a configuration variable`);
      assert.equal(environment().CONSOLIDATION_BACKEND, 'gcp');
    });

    it('sets every variable without a default, and leaves only defaulted ones out', () => {
      for (const [name, spec] of Object.entries(VARIABLES)) {
        if (name in environment()) continue;
        assert.ok((spec as { default?: string }).default !== undefined, `${name} has no default and is not set`);
      }
      for (const name of ['GCP_PROJECT', 'STATE_BUCKET', 'PIPELINE_FILE', 'DATAFLOW_TEMP_LOCATION', 'DATAFLOW_SERVICE_ACCOUNT']) assert.ok(name in environment(), `${name} must be set`);
      for (const name of LOCAL_ONLY) assert.ok(!(name in environment()), `${name} belongs to the local stack`);
    });

    it("gives each Terraform variable the configuration's default, a value the functions accept", () => {
      let mirrored = 0;
      for (const [name, value] of Object.entries(environment())) {
        const variable = variableOf(value);
        if (!variable) continue;
        const fallback = config.variables.get(variable)!.default;
        if (fallback === undefined) continue;
        const spec = VARIABLES[name as keyof typeof VARIABLES] as { default?: string; schema: { safeParse(v: unknown): { success: boolean } } };
        assert.equal(String(fallback), spec.default, `var.${variable} defaults to ${fallback}, ${name} to ${spec.default}`);
        // An empty value is "not set" to loadConfig: the configuration's own (derived) default applies.
        assert.ok(String(fallback) === '' || spec.schema.safeParse(String(fallback)).success, `${name} refuses ${fallback}`);
        mirrored++;
      }
      assert.ok(mirrored >= 15, `only ${mirrored} variables mirrored`);
    });

    it('points the functions at the resources created here', () => {
      const env = environment();
      assert.equal(soleExpression(env.STATE_BUCKET), 'google_storage_bucket.state.name');
      assert.equal(env.PIPELINE_FILE, 'gs://${google_storage_bucket_object.pipeline.bucket}/${google_storage_bucket_object.pipeline.name}');
      assert.equal(env.DATAFLOW_TEMP_LOCATION, 'gs://${google_storage_bucket.dataflow.name}/temp');
      assert.equal(soleExpression(env.DATAFLOW_SERVICE_ACCOUNT), 'google_service_account.dataflow_worker.email');
      assert.equal(soleExpression(env.IDS_TOPIC), 'google_pubsub_topic.ids.name');
      assert.equal(soleExpression(env.BATCHES_TOPIC), 'google_pubsub_topic.batches.name');
      assert.equal(soleExpression(env.CONSOLIDATED_TABLE), 'google_bigquery_table.consolidated.table_id');
      assert.equal(soleExpression(env.STAGING_DATASET), 'google_bigquery_dataset.staging.dataset_id');
      assert.match(env.TEMPLATE_PATH, /gs:\/\/dataflow-templates-\$\{var\.region\}\/latest\/flex\/Yaml_Template/);
    });
  });

  describe('the source archive', () => {
    const repoFiles = listFiles(REPO_ROOT, new Set(['node_modules', '.git', '.consolidation']));
    const archived = () => {
      const patterns = (config.locals.get('source_patterns') as string[]).map(filesetPattern);
      return new Set(repoFiles.filter((file) => patterns.some((pattern) => pattern.test(file))));
    };

    it('holds what Cloud Build compiles: package files and every file tsc includes', () => {
      const tsconfig = JSON.parse(readFileSync(join(REPO_ROOT, 'tsconfig.json'), 'utf8')) as { include: string[] };
      const compiled = repoFiles.filter((file) => tsconfig.include.some((glob) => filesetPattern(glob).test(file)));
      assert.ok(compiled.length > 20);
      for (const file of ['package.json', 'package-lock.json', 'tsconfig.json', ...compiled]) assert.ok(archived().has(file), `${file} is not in the archive`);
    });

    it("holds package.json's main (as source) and a gcp-build script that compiles it", () => {
      const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { main: string; scripts: Record<string, string> };
      assert.equal(pkg.main, 'dist/functions/index.js');
      assert.ok(archived().has('functions/index.ts'));
      assert.match(pkg.scripts['gcp-build'], /\btsc\b/);
    });

    it('holds the files the compiled code reads at run time (the schema files)', () => {
      const schemas = readdirSync(join(REPO_ROOT, 'shared', 'schema')).filter((name) => name.endsWith('.json'));
      assert.ok(schemas.includes('consolidated_table.json') && schemas.includes('batch_ids.json'));
      for (const name of schemas) assert.ok(archived().has(`shared/schema/${name}`), `shared/schema/${name} is not in the archive`);
    });

    it('leaves out builds, tests, dependencies and the Terraform folder', () => {
      for (const file of archived()) assert.doesNotMatch(file, /^(dist|test|node_modules|terraform|bench|\.consolidation)\//, `${file} should not be shipped`);
    });

    it('is named by a digest of the archived files, so the name changes when the code does', () => {
      const object = resource(config, 'google_storage_bucket_object.function_source');
      assert.equal(object.name, 'functions/source-${local.source_digest}.zip');
      const digest = String(config.locals.get('source_digest'));
      assert.match(digest, /sha256\(/);
      assert.match(digest, /local\.source_files/);
      assert.match(digest, /filesha256\(/);
      const archive = config.data.get('archive_file.function_source')!;
      assert.equal(archive.dynamic?.source?.[0]?.for_each, '${local.source_files}');
    });

    it('reads the glob patterns as fileset does', () => {
      assert.ok(filesetPattern('shared/**').test('shared/schema/agents.json'));
      assert.ok(filesetPattern('functions/**/*.ts').test('functions/index.ts'));
      assert.ok(!filesetPattern('functions/**/*.ts').test('functions/index.js'));
      assert.ok(!filesetPattern('package.json').test('test/package.json'));
    });
  });

  describe('Cloud Scheduler', () => {
    const job = () => resource(config, 'google_cloud_scheduler_job.publish_ops');

    it('runs every 20 minutes by default, in the configured time zone', () => {
      assert.equal(variableOf(job().schedule), 'schedule');
      assert.equal(config.variables.get('schedule')!.default, '*/20 * * * *');
      assert.equal(variableOf(job().time_zone), 'time_zone');
      assert.equal(config.variables.get('time_zone')!.default, 'Etc/UTC');
    });

    it('POSTs an empty JSON object to publishOps with an OIDC token of its own account', () => {
      const target = block(job(), 'http_target')!;
      assert.equal(target.http_method, 'POST');
      assert.equal(soleExpression(target.uri), 'google_cloudfunctions2_function.publish_ops.service_config[0].uri');
      assert.equal(target.body, '${base64encode("{}")}');
      const oidc = block(target, 'oidc_token')!;
      assert.equal(targetName(oidc.service_account_email), 'scheduler');
      assert.equal(oidc.audience, target.uri);
      assert.equal(blocks(target, 'oauth_token').length, 0);
    });
  });

  it('admits only internal traffic to publishOps by default (Cloud Scheduler of the project is internal)', () => {
    const ingress = config.variables.get('publish_ops_ingress')!;
    assert.equal(ingress.default, 'ALLOW_INTERNAL_ONLY');
    assert.match(String(block(ingress, 'validation')!.condition), /"ALLOW_ALL"/, 'opening it stays possible');
  });
});

describe('terraform/: validations that agree with the functions', () => {
  let config: TerraformConfig;
  before(async () => {
    config = await loadTerraform();
  });

  /** The pattern of a variable's `can(regex("...", var.x))` validation, as a RegExp. */
  const patternOf = (variable: string) => {
    const condition = String(block(config.variables.get(variable), 'validation')!.condition);
    const source = /regex\("((?:[^"\\]|\\.)+)", var\./.exec(condition)![1].replace(/\\\\/g, '\\');
    return new RegExp(source);
  };
  const functionsAccept = (name: 'STUCK_AFTER' | 'REGION', value: string) => {
    try {
      loadConfig({ [name]: value });
      return true;
    } catch {
      return false;
    }
  };

  it('stuck_after: Terraform accepts exactly what the functions accept at start-up (at least a minute)', () => {
    const pattern = patternOf('stuck_after');
    const values = ['0s', '30s', '59s', '60s', '61s', '90s', '100s', '3600s', '0m', '1m', '010m', '15m', '0h', '1h', '1d', '59999ms', '60000ms', '600000ms', '1.5h', 'PT15M', '15 m', '15'];
    for (const value of values) assert.equal(pattern.test(value), functionsAccept('STUCK_AFTER', value), `stuck_after=${JSON.stringify(value)}`);
    for (const refused of ['0s', '30s', '59s', '0m', '59999ms']) assert.ok(!pattern.test(refused), `${refused} is under a minute`);
    assert.ok(pattern.test(String(config.variables.get('stuck_after')!.default)));
  });

  it('region: Terraform and the functions accept the same regions, two-digit suffixes included', () => {
    const pattern = patternOf('region');
    for (const value of ['europe-west1', 'europe-west10', 'europe-west12', 'us-central1', 'me-central2', 'northamerica-northeast2', 'europe-west', 'europe-west100', 'EU', 'europe west1', 'europe-west1a']) {
      assert.equal(pattern.test(value), functionsAccept('REGION', value), `region=${value}`);
    }
    assert.ok(pattern.test('europe-west10'));
  });
});
