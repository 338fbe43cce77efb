import assert from 'node:assert/strict';
import { block, loadTerraform, parseTerraform, resource, resourcesOfType, soleExpression, type Body, type TerraformConfig } from './model';

/** What a resource waits for: its depends_on entries and the resources its arguments refer to. */
function dependsOn(body: Body): string[] {
  return ((body.depends_on ?? []) as string[]).map((entry) => entry.replace(/^\$\{|\}$/g, ''));
}

/** Every resource a resource waits for, directly or through the resources it waits for (depends_on only). */
function waitsFor(config: TerraformConfig, address: string, seen = new Set<string>()): Set<string> {
  for (const dependency of dependsOn(resource(config, address))) {
    if (seen.has(dependency)) continue;
    seen.add(dependency);
    if (config.resources.has(dependency)) waitsFor(config, dependency, seen);
  }
  return seen;
}

/** The resources a time_sleep's triggers refer to (it is created after them). */
function sleepsAfter(config: TerraformConfig, sleep: string): string[] {
  const body = resource(config, sleep);
  const referenced = Object.values((body.triggers ?? {}) as Record<string, string>).map((value) => soleExpression(value)!.split('.').slice(0, 2).join('.'));
  return [...referenced, ...dependsOn(body)];
}

describe('terraform/: a first apply in a fresh project', () => {
  let config: TerraformConfig;
  before(async () => {
    config = await loadTerraform();
  });

  it('creates the Pub/Sub and Eventarc service agents explicitly, with the beta provider', () => {
    const identities = resourcesOfType(config, 'google_project_service_identity');
    assert.deepEqual([...identities.keys()].sort(), ['eventarc', 'pubsub']);
    for (const [name, identity] of identities) {
      assert.equal(identity.provider, '${google-beta}');
      assert.equal(identity.service, `${name}.googleapis.com`);
      assert.ok(dependsOn(identity).includes('google_project_service.enabled'), `${name}: created once its API is enabled`);
    }
    assert.equal(config.locals.get('pubsub_service_agent'), '${google_project_service_identity.pubsub.email}');
    assert.equal(config.locals.get('eventarc_service_agent'), '${google_project_service_identity.eventarc.email}');
  });

  it('grants the Eventarc agent its role', () => {
    const grant = resource(config, 'google_project_iam_member.eventarc_agent_runs_triggers');
    assert.equal(grant.role, 'roles/eventarc.serviceAgent');
    assert.equal(grant.member, 'serviceAccount:${local.eventarc_service_agent}');
  });

  it('waits for the agents and the Eventarc agent grant to propagate', () => {
    const after = sleepsAfter(config, 'time_sleep.service_agents');
    for (const needed of ['google_project_service_identity.pubsub', 'google_project_service_identity.eventarc', 'google_project_iam_member.eventarc_agent_runs_triggers']) assert.ok(after.includes(needed), `the wait does not follow ${needed}`);
    assert.equal(resource(config, 'time_sleep.service_agents').create_duration, '${var.iam_propagation_wait}');
    assert.match(String(config.variables.get('iam_propagation_wait')!.default), /^\d+s$/);
    assert.ok(parseInt(String(config.variables.get('iam_propagation_wait')!.default), 10) >= 60);
  });

  it('makes every grant to the Pub/Sub agent wait for the agent', () => {
    const grants = [...config.resources.entries()].filter(([address, body]) => /_iam_member\./.test(address) && body.member === 'serviceAccount:${local.pubsub_service_agent}');
    assert.equal(grants.length, 3);
    for (const [address] of grants) assert.ok(waitsFor(config, address).has('time_sleep.service_agents'), `${address} may run before the Pub/Sub agent exists`);
  });

  it('waits after granting eventarc.eventReceiver and the token grant, before the Dataflow trigger is created', () => {
    const after = sleepsAfter(config, 'time_sleep.trigger_grants');
    assert.ok(after.includes('google_project_iam_member.triggers_receive_events'));
    assert.ok(after.includes('google_service_account_iam_member.pubsub_agent_signs_trigger_tokens'));
    const merge = waitsFor(config, 'google_cloudfunctions2_function.merge_on_complete');
    for (const needed of ['time_sleep.trigger_grants', 'time_sleep.service_agents']) assert.ok(merge.has(needed), `mergeOnComplete's trigger does not wait for ${needed}`);
    assert.ok(block(resource(config, 'google_cloudfunctions2_function.merge_on_complete'), 'event_trigger'));
  });

  it('creates the push subscriptions once their tokens can be signed and their functions invoked', () => {
    const push = waitsFor(config, 'google_pubsub_subscription.push');
    for (const needed of ['time_sleep.trigger_grants', 'google_cloud_run_v2_service_iam_member.triggers_invoke_collect_ids', 'google_cloud_run_v2_service_iam_member.triggers_invoke_launch_dataflow']) assert.ok(push.has(needed), `the push subscriptions do not wait for ${needed}`);
  });

  it('builds the functions only once the build account can write logs, push images and read the sources', () => {
    const after = sleepsAfter(config, 'time_sleep.build_grants');
    for (const needed of ['google_project_iam_member.build_writes_logs', 'google_artifact_registry_repository_iam_member.build_pushes_images', 'google_project_iam_member.build_reads_sources']) assert.ok(after.includes(needed), needed);
    for (const name of resourcesOfType(config, 'google_cloudfunctions2_function').keys()) {
      assert.ok(waitsFor(config, `google_cloudfunctions2_function.${name}`).has('time_sleep.build_grants'), `${name} may be built before its build account can build`);
    }
  });

  it('finds a resource that does not wait when it should', async () => {
    const hasty = await parseTerraform([{ name: 'h.tf', text: 'resource "time_sleep" "w" {\n  create_duration = "60s"\n}\nresource "google_pubsub_topic" "t" {\n  name = "t"\n}\nresource "google_pubsub_subscription" "s" {\n  topic = google_pubsub_topic.t.id\n  depends_on = [google_pubsub_topic.t]\n}\n' }]);
    assert.ok(!waitsFor(hasty, 'google_pubsub_subscription.s').has('time_sleep.w'));
    assert.ok(waitsFor(hasty, 'google_pubsub_subscription.s').has('google_pubsub_topic.t'));
  });
});
