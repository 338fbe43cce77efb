import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import * as functions from '@google-cloud/functions-framework';
import type { CloudEvent } from '@google-cloud/functions-framework';
import { getTestServer } from '@google-cloud/functions-framework/testing';
import sinon from 'sinon';
import { buildHandlers } from '../../functions/handlers';
import { registerFunctions } from '../../functions/registry';
import { paths } from '../../shared/batch';
import { decodePubsubEvent } from '../../shared/events';
import { TEST_BATCH_ID, chunkFile, makeFakes, pubsubEvent, seedBatch, stateOf, type Fakes } from '../support/fakes';

/**
 * Terraform delivers the IDs and batches topics to collectIds and launchDataflow through push
 * subscriptions (terraform/pubsub.tf), not Eventarc: Pub/Sub POSTs its own JSON body to the
 * function's URL, at /projects/<project>/topics/<topic>. These tests send such a body, as Pub/Sub
 * writes it, to the Functions Framework serving the deployed registration (functions/registry.ts)
 * over loopback, and check that the unchanged handlers do their work from it.
 */

const PROJECT = 'ussd-prod';
const CHUNKS = [['op-a1', 'op-a2'], ['op-b1', 'op-b2'], ['op-c1']];
const WINDOW = { from: '2026-01-15T09:45:00.000Z', to: '2026-01-15T10:20:00.000Z' };

/** A push request body as Pub/Sub sends it (the wrapped format, both spellings of the IDs). */
function pushBody(payload: unknown, messageId: string, attributes: Record<string, string>, subscription: string, data?: string): unknown {
  const publishTime = '2026-01-15T10:22:01.123Z';
  return {
    message: {
      attributes,
      data: data ?? Buffer.from(JSON.stringify(payload), 'utf8').toString('base64'),
      messageId,
      message_id: messageId,
      publishTime,
      publish_time: publishTime,
    },
    subscription: `projects/${PROJECT}/subscriptions/${subscription}`,
  };
}

describe('push delivery: a Pub/Sub push body reaches the handlers as the CloudEvent they expect', () => {
  let f: Fakes;
  const servers: Server[] = [];

  beforeEach(() => {
    f = makeFakes();
    registerFunctions(buildHandlers(f.deps));
  });
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
  });

  /** Starts the Functions Framework for one entry point on loopback; returns a function that pushes a body to a topic path. */
  async function serve(entryPoint: string): Promise<(topic: string, body: unknown) => Promise<number>> {
    const server = getTestServer(entryPoint);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return async (topic, body) => {
      const response = await fetch(`http://127.0.0.1:${port}/projects/${PROJECT}/topics/${topic}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'User-Agent': 'APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)' },
        body: JSON.stringify(body),
      });
      await response.arrayBuffer();
      return response.status;
    };
  }

  it('turns the push body into a messagePublished CloudEvent that decodes as an Eventarc delivery does', async () => {
    const received: CloudEvent<unknown>[] = [];
    functions.cloudEvent('pushProbe', async (event: CloudEvent<unknown>) => {
      received.push(event);
    });
    const push = await serve('pushProbe');
    const payload = { type: 'chunk', batchId: TEST_BATCH_ID, chunk: 0, ids: ['op-a1'] };
    const attributes = { type: 'chunk', batchId: TEST_BATCH_ID, chunk: '0' };
    assert.equal(await push('ussd-operations-topic', pushBody(payload, 'm-probe', attributes, 'ussd-collectIds-push')), 204);
    const [event] = received;
    assert.equal(event.type, 'google.cloud.pubsub.topic.v1.messagePublished');
    assert.equal(event.source, `//pubsub.googleapis.com/projects/${PROJECT}/topics/ussd-operations-topic`);
    assert.equal(event.id, 'm-probe');
    assert.equal(event.time, '2026-01-15T10:22:01.123Z');
    assert.deepEqual(decodePubsubEvent(event), decodePubsubEvent(pubsubEvent(payload, { messageId: 'm-probe', attributes })));
    assert.deepEqual(decodePubsubEvent(event), { ok: true, messageId: 'm-probe', attributes, payload });
  });

  it('collectIds stores every chunk and announces the batch once, from push bodies', async () => {
    await seedBatch(f.store, { chunks: CHUNKS, window: WINDOW, storeChunks: false });
    const push = await serve('collectIds');
    const subscription = 'ussd-collectIds-push';
    for (const [n, ids] of CHUNKS.entries()) {
      const status = await push('ussd-operations-topic', pushBody({ type: 'chunk', batchId: TEST_BATCH_ID, chunk: n, ids }, `m-chunk-${n}`, { type: 'chunk', batchId: TEST_BATCH_ID, chunk: String(n) }, subscription));
      assert.equal(status, 204, `chunk ${n} acknowledged`);
    }
    const seal = pushBody({ type: 'seal', batchId: TEST_BATCH_ID, chunkCount: 3, idCount: 5, window: WINDOW }, 'm-seal', { type: 'seal', batchId: TEST_BATCH_ID }, subscription);
    assert.equal(await push('ussd-operations-topic', seal), 204);

    CHUNKS.forEach((ids, n) => assert.equal(f.store.get(paths.chunk(TEST_BATCH_ID, n)), chunkFile(ids)));
    assert.equal(stateOf(f.store)?.status, 'COLLECTED');
    assert.deepEqual(f.publisher.on('consolidation-batches').map((m) => m.data), [{ type: 'batch', batchId: TEST_BATCH_ID, attempt: 1 }]);
    // The push message ID is the one the handler records: a redelivery is recognised as such.
    assert.equal(JSON.parse(f.store.get(paths.complete(TEST_BATCH_ID))!).messageId, 'm-seal');
    assert.equal(await push('ussd-operations-topic', seal), 204, 'a redelivered seal is acknowledged');
    assert.equal(f.publisher.on('consolidation-batches').length, 1, 'and announces nothing twice');
  });

  it('launchDataflow launches the announced batch from a push body', async () => {
    await seedBatch(f.store, { status: 'COLLECTED' });
    const push = await serve('launchDataflow');
    const status = await push('consolidation-batches', pushBody({ type: 'batch', batchId: TEST_BATCH_ID, attempt: 1 }, 'm-batch', { type: 'batch', batchId: TEST_BATCH_ID }, 'ussd-launchDataflow-push'));
    assert.equal(status, 204);
    assert.equal(f.launcher.requests.length, 1, 'one job launched');
    assert.equal(stateOf(f.store)?.status, 'LAUNCHED');
  });

  it('answers an error when the handler fails, so Pub/Sub redelivers and finally dead-letters', async () => {
    await seedBatch(f.store, { chunks: CHUNKS, window: WINDOW, storeChunks: false });
    f.store.failOn('create', paths.chunk(TEST_BATCH_ID, 0));
    const push = await serve('collectIds');
    const body = pushBody({ type: 'chunk', batchId: TEST_BATCH_ID, chunk: 0, ids: CHUNKS[0] }, 'm-chunk-0', { type: 'chunk', batchId: TEST_BATCH_ID, chunk: '0' }, 'ussd-collectIds-push');
    // The Functions Framework reports the handler's error on stderr; kept out of the test output.
    const reported = sinon.stub(console, 'error');
    let first: number;
    try {
      first = await push('ussd-operations-topic', body);
    } finally {
      reported.restore();
    }
    assert.ok(first >= 500, `a failed delivery must not be acknowledged (got ${first})`);
    assert.ok(reported.args.flat().some((arg) => String(arg).includes('injected create failure')), 'the error is reported');
    assert.equal(await push('ussd-operations-topic', body), 204, 'the redelivery succeeds');
    assert.equal(f.store.get(paths.chunk(TEST_BATCH_ID, 0)), chunkFile(CHUNKS[0]));
  });

  it('acknowledges a message that is not JSON, logging it with its push message ID, instead of retrying it forever', async () => {
    const push = await serve('collectIds');
    const status = await push('ussd-operations-topic', pushBody(undefined, 'm-garbage', {}, 'ussd-collectIds-push', Buffer.from('not json').toString('base64')));
    assert.equal(status, 204);
    const [logged] = f.logger.at('ERROR');
    assert.ok(logged, 'logged at ERROR');
    assert.match(logged.message, /not JSON/);
    assert.equal(logged.fields.messageId, 'm-garbage');
  });
});
