import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PUBLIC_PRINCIPALS, TERRAFORM_DIR, commentAbove, grantsOf, loadTerraform, parseTerraform, publicPrincipals, resourcesOfType, type Grant, type TerraformConfig } from './model';

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
    'roles/dataflow.developer on project',
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
    'roles/dataflow.worker on project',
    'roles/bigquery.user on project',
    'roles/bigquery.dataViewer on table:var.ussd_table',
    'roles/bigquery.dataViewer on table:var.transactions_table',
    'roles/bigquery.dataViewer on table:var.services_table',
    'roles/bigquery.dataViewer on table:var.agents_table',
    'roles/bigquery.dataEditor on dataset:staging',
    'roles/storage.objectUser on bucket:dataflow',
    'roles/storage.objectViewer on bucket:state',
  ],
  // The Google-managed Pub/Sub service agent.
  'local.pubsub_service_agent': ['roles/pubsub.publisher on topic:dead_letter', 'roles/iam.serviceAccountTokenCreator on serviceAccount:triggers'],
};

/** Roles that exist at project level only (the API has no narrower resource for them). */
const PROJECT_ONLY_ROLES = ['roles/bigquery.jobUser', 'roles/bigquery.user', 'roles/dataflow.developer', 'roles/dataflow.viewer', 'roles/dataflow.worker', 'roles/eventarc.eventReceiver'];

const describeGrant = (grant: Grant) => `${grant.role} on ${grant.scope}`;

describe('terraform/: identities and least privilege', () => {
  let config: TerraformConfig;
  let grants: Grant[];
  before(async () => {
    config = await loadTerraform();
    grants = grantsOf(config);
  });

  it('creates one service account per function, one for the scheduler, the triggers and the Dataflow workers', () => {
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

  it('grants at project level only the roles that have no narrower resource', () => {
    for (const grant of grants.filter((g) => g.scope === 'project')) assert.ok(PROJECT_ONLY_ROLES.includes(grant.role), `${grant.address}: ${grant.role} should be granted on a bucket, dataset, table or topic`);
  });

  it("narrows the Dataflow workers' read of the state bucket to the pipeline file", () => {
    const grant = grants.find((g) => g.principal === 'dataflow_worker' && g.scope === 'bucket:state')!;
    assert.equal(grant.condition, 'resource.name.startsWith("projects/_/buckets/${google_storage_bucket.state.name}/objects/pipeline/")');
    assert.ok(grants.filter((g) => g.scope.startsWith('bucket:') && g.role !== 'roles/storage.objectViewer').every((g) => g.condition === undefined));
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

  it("explains the grant the dead-letter script makes, and makes it to the Pub/Sub agent only", () => {
    const script = readFileSync(join(TERRAFORM_DIR, 'scripts', 'attach-dead-letter.sh'), 'utf8');
    const bindings = [...script.matchAll(/add-iam-policy-binding[\s\S]*?--role="([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(bindings, ['roles/pubsub.subscriber']);
    assert.match(script, /--member="serviceAccount:\$PUBSUB_SERVICE_AGENT"/);
    assert.match(script.split('\n').slice(0, 6).join('\n'), /acknowledge/);
  });

  describe('no public principal', () => {
    it('appears anywhere in the configuration or its scripts', () => {
      assert.deepEqual(publicPrincipals(config), []);
      const script = readFileSync(join(TERRAFORM_DIR, 'scripts', 'attach-dead-letter.sh'), 'utf8');
      for (const principal of PUBLIC_PRINCIPALS) assert.ok(!script.includes(principal), `the script names ${principal}`);
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
