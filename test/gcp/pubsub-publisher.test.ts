import assert from 'node:assert/strict';
import { PubSub, Topic } from '@google-cloud/pubsub';
import sinon from 'sinon';
import { ChainError } from '../../shared/errors';
import { DEFAULT_BATCHING, PubSubPublisher } from '../../shared/gcp/pubsub-publisher';

/** The Pub/Sub adapter against real PubSub and Topic objects; only publishMessage is stubbed. */

const CHUNK = { type: 'chunk', batchId: '20260115T102000Z-1a2b3c', chunk: 0, ids: ['op-1', 'op-2'] };

function setup(options?: ConstructorParameters<typeof PubSubPublisher>[1]) {
  const pubsub = new PubSub({ projectId: 'my-project' });
  const topic = sinon.spy(pubsub, 'topic');
  const publishMessage = sinon.stub(Topic.prototype, 'publishMessage').resolves('message-1' as never);
  return { pubsub, topic, publishMessage, publisher: new PubSubPublisher(pubsub, options) };
}

describe('PubSubPublisher', () => {
  afterEach(() => sinon.restore());

  const messages = [
    { name: 'a chunk with attributes', message: { data: CHUNK, attributes: { type: 'chunk', batchId: CHUNK.batchId, chunk: '0' } }, json: JSON.stringify(CHUNK), attributes: { type: 'chunk', batchId: CHUNK.batchId, chunk: '0' } },
    { name: 'a message without attributes', message: { data: { type: 'batch', batchId: CHUNK.batchId, attempt: 1 } }, json: '{"type":"batch","batchId":"20260115T102000Z-1a2b3c","attempt":1}', attributes: {} },
    { name: 'non-ASCII data, as UTF-8', message: { data: { note: 'réseau ✓' } }, json: '{"note":"réseau ✓"}', attributes: {} },
  ];
  for (const m of messages) {
    it(`publishes ${m.name}: JSON bytes and attributes, resolving with the message ID`, async () => {
      const { publishMessage, publisher } = setup();
      assert.equal(await publisher.publish('ussd-operations-topic', m.message), 'message-1');
      sinon.assert.calledOnceWithExactly(publishMessage as sinon.SinonStub, { data: Buffer.from(m.json, 'utf8'), attributes: m.attributes });
      const sent = publishMessage.firstCall.args[0] as { data: Buffer };
      assert.deepStrictEqual(JSON.parse(sent.data.toString('utf8')), m.message.data);
      assert.equal((publishMessage.firstCall.thisValue as Topic).name, 'projects/my-project/topics/ussd-operations-topic');
    });
  }

  it('keeps one Topic per name, with the batching settings', async () => {
    const { topic, publishMessage, publisher } = setup();
    await publisher.publish('ussd-operations-topic', { data: 1 });
    await publisher.publish('ussd-operations-topic', { data: 2 });
    await publisher.publish('consolidation-batches', { data: 3 });

    assert.deepStrictEqual(topic.args, [
      ['ussd-operations-topic', { batching: { maxMessages: 100, maxMilliseconds: 10 } }],
      ['consolidation-batches', { batching: { maxMessages: 100, maxMilliseconds: 10 } }],
    ]);
    const topics = publishMessage.getCalls().map((c) => c.thisValue as Topic);
    assert.equal(topics[0], topics[1]);
    assert.notEqual(topics[0], topics[2]);
    const batching = topics[0].publisher.settings.batching!;
    assert.deepStrictEqual([batching.maxMessages, batching.maxMilliseconds], [DEFAULT_BATCHING.maxMessages, DEFAULT_BATCHING.maxMilliseconds]);
  });

  it('takes other batching settings', async () => {
    const { topic, publishMessage, publisher } = setup({ batching: { maxMessages: 10, maxMilliseconds: 50 } });
    await publisher.publish('ussd-operations-topic', { data: 1 });
    sinon.assert.calledOnceWithExactly(topic, 'ussd-operations-topic', { batching: { maxMessages: 10, maxMilliseconds: 50 } });
    const batching = (publishMessage.firstCall.thisValue as Topic).publisher.settings.batching!;
    assert.deepStrictEqual([batching.maxMessages, batching.maxMilliseconds], [10, 50]);
  });

  it('wraps a publish failure with the topic and the attributes', async () => {
    const { publishMessage, publisher } = setup();
    const failure = Object.assign(new Error('NOT_FOUND: Resource not found (resource=ussd-operations-topic).'), { code: 5 });
    publishMessage.rejects(failure);
    await assert.rejects(publisher.publish('ussd-operations-topic', { data: CHUNK, attributes: { type: 'chunk' } }), (e: ChainError) => {
      assert.ok(e instanceof ChainError);
      assert.match(e.message, /ussd-operations-topic.*NOT_FOUND/);
      assert.deepStrictEqual([e.context.topic, e.context.attributes, e.cause], ['ussd-operations-topic', { type: 'chunk' }, failure]);
      return true;
    });
  });
});
