import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PUBLIC_PRINCIPALS, TERRAFORM_DIR, block, commentAbove, grantsOf, loadTerraform, parseTerraform, publicPrincipals, resource, resourcesOfType, soleExpression, type Grant, type TerraformConfig } from './model';

/**
 * The roles each identity must hold, and where: exactly these, nothing more. `project` is the
 * project; `<kind>:<name>` a bucket, dataset, table, topic, Cloud Run service or service account
 * of this configuration (or `var.x` for the user's existing source tables).
 */
const EXPECTED_ROLES: Record<string, string[]> = {
  publish_ops: [
    'roles/bigquery.jobUser on project',
    'roles/bigquery.dataViewer on table:var.ussd_table',
    'roles/bigquery.dataViewer on table:var.transactions_table',
    'roles/storage.objectUser on bucket:state',
    'roles/pubsub.publisher on topic:ids',
    // The reconciler's repairs: announce or relaunch, ask Dataflow for a job, MERGE a batch whose event was lost.
    'roles/pubsub.publisher on topic:batches',
    'roles/dataflow.viewer on project',
    'roles/bigquery.dataEditor on dataset:staging',
    'roles/bigquery.dataEditor on table:consolidated',
  ],
  collect_ids: ['roles/storage.objectUser on bucket:state', 'roles/pubsub.publisher on topic:batches'],
  launch_dataflow: [
    'roles/bigquery.jobUser on project',
    'roles/bigquery.dataEditor on dataset:staging',
    'roles/storage.objectUser on bucket:state',
    'custom:dataflow_launcher on project',
    'roles/iam.serviceAccountUser on serviceAccount:dataflow_worker',
  ],
  merge_on_complete: [
    'roles/bigquery.jobUser on project',
    'roles/bigquery.dataEditor on dataset:staging',
    'roles/bigquery.dataEditor on table:consolidated',
    'roles/storage.objectUser on bucket:state',
  ],
  scheduler: ['roles/run.invoker on service:publish_ops', 'roles/run.invoker on service:audit'],
  // terraform/audit.tf: the daily audit.
  audit: [
    'roles/bigquery.jobUser on project',
    'roles/bigquery.dataViewer on table:var.ussd_table',
    'roles/bigquery.dataViewer on table:var.transactions_table',
    'roles/bigquery.dataViewer on table:var.services_table',
    'roles/bigquery.dataViewer on table:var.agents_table',
    'roles/bigquery.dataViewer on table:consolidated',
    'roles/bigquery.dataEditor on table:audit',
    'roles/storage.objectUser on bucket:state',
    // Only with audit_repair: the replays it POSTs.
    'roles/run.invoker on service:publish_ops',
  ],
  triggers: [
    'roles/run.invoker on service:collect_ids',
    'roles/run.invoker on service:launch_dataflow',
    'roles/run.invoker on service:merge_on_complete',
    'roles/eventarc.eventReceiver on project',
  ],
  dataflow_worker: [
    'custom:dataflow_worker on project',
    'roles/viewer on project',
    'roles/bigquery.user on project',
    'roles/bigquery.dataViewer on table:var.ussd_table',
    'roles/bigquery.dataViewer on table:var.transactions_table',
    'roles/bigquery.dataViewer on table:var.services_table',
    'roles/bigquery.dataViewer on table:var.agents_table',
    'roles/bigquery.dataEditor on dataset:staging',
    'roles/storage.objectUser on bucket:dataflow',
    'roles/storage.objectViewer on bucket:source if objects under pipeline/',
  ],
  build: ['roles/logging.logWriter on project', 'roles/artifactregistry.writer on repository:functions', 'roles/storage.objectViewer on project if bucket:local.function_sources_bucket'],
  // The Google-managed service agents.
  'local.pubsub_service_agent': [
    'roles/pubsub.publisher on topic:dead_letter',
    'roles/pubsub.subscriber on subscription:push',
    'roles/iam.serviceAccountTokenCreator on serviceAccount:triggers',
  ],
  'local.eventarc_service_agent': ['roles/eventarc.serviceAgent on project'],
};

/** Roles that exist at project level only (the API has no narrower resource for them). */
const PROJECT_ONLY_ROLES = [
  'roles/bigquery.jobUser',
  'roles/bigquery.user',
  'roles/dataflow.viewer',
  'roles/eventarc.eventReceiver',
  'roles/eventarc.serviceAgent',
  'roles/logging.logWriter',
  // Required by Google's Flex Template guide for the launcher and worker account (see iam.tf).
  'roles/viewer',
  'custom:dataflow_launcher',
  'custom:dataflow_worker',
];

/** `roles/x`, or `custom:<name>` for a role of google_project_iam_custom_role.<name>. */
const roleName = (role: string) => {
  const custom = /^\$\{google_project_iam_custom_role\.(\w+)\.name\}$/.exec(role);
  return custom ? `custom:${custom[1]}` : role;
};

/** What an IAM condition narrows a grant to: a bucket named by a local, or a prefix of objects. */
const conditionScope = (condition: string | undefined) => {
  if (condition === undefined) return '';
  const bucket = /^resource\.name == "projects\/_\/buckets\/\$\{(local\.\w+)\}" \|\| resource\.name\.startsWith\("projects\/_\/buckets\/\$\{\1\}\/"\)$/.exec(condition);
  if (bucket) return ` if bucket:${bucket[1]}`;
  const objects = /^resource\.name\.startsWith\("projects\/_\/buckets\/\$\{google_storage_bucket\.\w+\.name\}\/objects\/([\w/-]+\/)"\)$/.exec(condition);
  if (objects) return ` if objects under ${objects[1]}`;
  return ` if ${condition}`;
};

const describeGrant = (grant: Grant) => `${roleName(grant.role)} on ${grant.scope}${conditionScope(grant.condition)}`;

/** The permissions of a custom role of the configuration. */
const permissionsOf = (config: TerraformConfig, name: string) => resource(config, `google_project_iam_custom_role.${name}`).permissions as string[];

describe('terraform/: identities and least privilege', () => {
  let config: TerraformConfig;
  let grants: Grant[];
  before(async () => {
    config = await loadTerraform();
    grants = grantsOf(config);
  });

  it('creates one service account per function, one for the scheduler, the deliveries, the Dataflow workers and the builds', () => {
    const accounts = resourcesOfType(config, 'google_service_account');
    assert.deepEqual([...accounts.keys()].sort(), Object.keys(EXPECTED_ROLES).filter((name) => !name.startsWith('local.')).sort());
    for (const [name, account] of accounts) {
      assert.equal(account.account_id, `\${var.name_prefix}-${name.replace(/_/g, '-')}`);
      assert.ok(account.account_id.length - '${var.name_prefix}'.length + 10 <= 30, `${name}: account ID too long with a 10-character prefix`);
    }
  });

  for (const [principal, expected] of Object.entries(EXPECTED_ROLES)) {
    it(`grants ${principal} exactly its roles`, () => {
      const held = grants.filter((grant) => grant.principal === principal).map(describeGrant);
      assert.deepEqual(held.sort(), [...expected].sort());
    });
  }

  it('grants nothing to anyone else', () => {
    const known = new Set(Object.keys(EXPECTED_ROLES));
    assert.deepEqual(grants.filter((grant) => !known.has(grant.principal)).map((grant) => grant.address), []);
  });

  it('grants at project level only the roles that have no narrower resource, or storage narrowed by a condition to one bucket', () => {
    for (const grant of grants.filter((g) => g.scope === 'project')) {
      if (grant.role.startsWith('roles/storage.')) {
        assert.match(conditionScope(grant.condition), /^ if bucket:local\.\w+$/, `${grant.address}: a project-level storage grant must be narrowed to one bucket`);
        continue;
      }
      assert.ok(PROJECT_ONLY_ROLES.includes(roleName(grant.role)), `${grant.address}: ${grant.role} should be granted on a bucket, dataset, table or topic`);
      assert.equal(grant.condition, undefined);
    }
  });

  it('names in project-level conditions exactly the bucket Google creates for Cloud Functions sources, and stages Dataflow launches in the chain\'s own bucket', () => {
    assert.equal(config.locals.get('function_sources_bucket'), 'gcf-v2-sources-${data.google_project.this.number}-${var.region}');
    assert.equal(config.locals.get('default_staging_bucket'), undefined);
    assert.equal((config.locals.get('function_environment') as Record<string, string>).DATAFLOW_STAGING_LOCATION, 'gs://${google_storage_bucket.dataflow.name}/staging');
  });

  describe('the Dataflow workers cannot read the chain\'s buckets', () => {
    it('run with a custom role: the worker permissions without any storage permission', () => {
      const permissions = permissionsOf(config, 'dataflow_worker');
      assert.deepEqual(permissions.filter((p) => p.startsWith('storage.')), []);
      for (const needed of ['dataflow.workItems.lease', 'dataflow.workItems.update', 'dataflow.workItems.sendMessage', 'dataflow.shuffle.read', 'dataflow.shuffle.write', 'dataflow.jobs.get', 'compute.instances.setDiskAutoDelete', 'logging.logEntries.create', 'monitoring.timeSeries.create']) {
        assert.ok(permissions.includes(needed), `the worker role lacks ${needed}`);
      }
      assert.equal(new Set(permissions).size, permissions.length);
      assert.ok(!grants.some((g) => g.role === 'roles/dataflow.worker'), 'roles/dataflow.worker carries project-wide storage.objects.get/create');
    });

    it('are granted the state bucket nowhere, and the source bucket for pipeline/ only', () => {
      const worker = grants.filter((g) => g.principal === 'dataflow_worker');
      assert.deepEqual(worker.filter((g) => g.scope === 'bucket:state'), []);
      const source = worker.filter((g) => g.scope === 'bucket:source');
      assert.deepEqual(source.map(describeGrant), ['roles/storage.objectViewer on bucket:source if objects under pipeline/']);
    });

    it('hold roles/viewer because the Flex Template guide requires it, with the guide cited', () => {
      assert.match(commentAbove(config, 'google_project_iam_member.dataflow_worker_views_project'), /https:\/\/cloud\.google\.com\/dataflow\/docs\/guides\/templates\/run-flex-templates/);
      assert.match(commentAbove(config, 'google_project_iam_member.dataflow_worker_views_project'), /DATAFLOW_STAGING_LOCATION/);
    });
  });

  it('lets launchDataflow launch and read jobs, not cancel or update them, nor start builds', () => {
    const permissions = permissionsOf(config, 'dataflow_launcher');
    for (const needed of ['dataflow.jobs.create', 'dataflow.jobs.get', 'dataflow.jobs.list']) assert.ok(permissions.includes(needed), needed);
    for (const permission of permissions) assert.match(permission, /^dataflow\.(jobs\.(create|get|list)|messages\.list|metrics\.get)$/);
    assert.ok(!grants.some((g) => g.role === 'roles/dataflow.developer' || g.role === 'roles/dataflow.admin'));
  });

  it('gives custom roles IDs that IAM accepts for any name_prefix', () => {
    for (const [name, role] of resourcesOfType(config, 'google_project_iam_custom_role')) {
      assert.equal(role.role_id, `\${replace(var.name_prefix, "-", "_")}_${name}`);
      assert.match(`ussd_consol_${name}`, /^[a-zA-Z0-9_.]{3,64}$/);
    }
  });

  it('keeps the pipeline file where only the deployer writes: no function account can write the source bucket', () => {
    const pipeline = resource(config, 'google_storage_bucket_object.pipeline');
    assert.equal(soleExpression(pipeline.bucket), 'google_storage_bucket.source.name');
    assert.deepEqual(grants.filter((g) => g.scope === 'bucket:source' && g.role !== 'roles/storage.objectViewer').map((g) => g.address), []);
    assert.deepEqual(grants.filter((g) => g.scope === 'bucket:source').map((g) => g.principal), ['dataflow_worker']);
  });

  it('builds every function as the build account, which holds exactly what a build needs', () => {
    for (const [name, fn] of resourcesOfType(config, 'google_cloudfunctions2_function')) {
      assert.equal(soleExpression(block(fn, 'build_config')!.service_account), 'google_service_account.build.id', `${name} builds as the default Compute Engine account`);
    }
    assert.ok(!config.variables.has('build_service_account'), 'the build account is always the one created here');
  });

  it('uses additive grants only: no authoritative bindings or policies', () => {
    for (const address of config.resources.keys()) assert.doesNotMatch(address, /_iam_(binding|policy)\./);
  });

  it('explains every grant with a comment', () => {
    for (const grant of grants) {
      const comment = commentAbove(config, grant.address);
      assert.ok(comment.split(/\s+/).length >= 6, `${grant.address} has no comment saying why (found: ${JSON.stringify(comment)})`);
    }
  });

  describe('no public principal', () => {
    it('appears anywhere in the configuration or its scripts', () => {
      assert.deepEqual(publicPrincipals(config), []);
      for (const name of ['deploy.sh', 'check.sh']) {
        const script = readFileSync(join(TERRAFORM_DIR, name), 'utf8');
        for (const principal of PUBLIC_PRINCIPALS) assert.ok(!script.includes(principal), `${name} names ${principal}`);
      }
    });

    it('never allows unauthenticated calls of a function', () => {
      for (const grant of grants.filter((g) => g.role === 'roles/run.invoker')) assert.match(grant.principal, /^(scheduler|triggers|audit)$/);
    });

    for (const [what, text] of [
      ['an allUsers invoker', 'resource "google_cloud_run_v2_service_iam_member" "open" {\n  name = "f"\n  role = "roles/run.invoker"\n  member = "allUsers"\n}\n'],
      ['allAuthenticatedUsers in a binding list', 'resource "google_storage_bucket_iam_binding" "b" {\n  bucket = "b"\n  role = "roles/storage.objectViewer"\n  members = ["serviceAccount:x@y.iam.gserviceaccount.com", "allAuthenticatedUsers"]\n}\n'],
      ['allUsers in a local used elsewhere', 'locals {\n  who = "allUsers"\n}\n'],
    ] as const) {
      it(`is detected when there is one: ${what}`, async () => {
        const open = await parseTerraform([{ name: 'open.tf', text }]);
        assert.ok(publicPrincipals(open).length >= 1);
      });
    }

    it('is not confused by a comment that names one', async () => {
      const commented = await parseTerraform([{ name: 'c.tf', text: '# never allUsers here\nresource "google_pubsub_topic" "t" {\n  name = "t"\n}\n' }]);
      assert.deepEqual(publicPrincipals(commented), []);
    });
  });

  it('finds a grant without a comment, or with a role it does not expect', async () => {
    const sloppy = await parseTerraform([
      {
        name: 'sloppy.tf',
        text: 'resource "google_service_account" "publish_ops" {\n  account_id = "x"\n}\nresource "google_project_iam_member" "too_wide" {\n  project = "p"\n  role    = "roles/storage.admin"\n  member  = "serviceAccount:${google_service_account.publish_ops.email}"\n}\n',
      },
    ]);
    const [grant] = grantsOf(sloppy);
    assert.equal(commentAbove(sloppy, grant.address), '');
    assert.equal(describeGrant(grant), 'roles/storage.admin on project');
    assert.ok(!EXPECTED_ROLES.publish_ops.includes(describeGrant(grant)));
    assert.ok(!PROJECT_ONLY_ROLES.includes(grant.role));
  });

  it('refuses IAM resource types it cannot read', async () => {
    const unknown = await parseTerraform([{ name: 'u.tf', text: 'resource "google_spanner_database_iam_member" "x" {\n  role = "r"\n  member = "m"\n}\n' }]);
    assert.throws(() => grantsOf(unknown), /not understood/);
  });
});
