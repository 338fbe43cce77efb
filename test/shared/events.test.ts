import { protos } from '@google-cloud/dataflow';
import assert from 'node:assert/strict';
import type { CloudEvent } from '@google-cloud/functions-framework';
import { decodePubsubEvent, describeIssues, jobStateName, type DecodedMessage } from '../../shared/events';
import { pubsubEvent, rawBase64 } from '../support/fakes';

function event(data: unknown, id = 'ce-1'): CloudEvent<unknown> {
  return { specversion: '1.0', id, type: 'google.cloud.pubsub.topic.v1.messagePublished', source: '//pubsub.googleapis.com/projects/p/topics/t', data };
}

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

describe('decodePubsubEvent', () => {
  const cases: { name: string; event: CloudEvent<unknown>; expected: DecodedMessage }[] = [
    {
      name: 'a JSON message with its ID and attributes',
      event: pubsubEvent({ type: 'chunk', ids: ['a'] }, { messageId: '123', attributes: { type: 'chunk' } }),
      expected: { ok: true, messageId: '123', attributes: { type: 'chunk' }, payload: { type: 'chunk', ids: ['a'] } },
    },
    {
      name: 'UTF-8 text survives',
      event: event({ message: { data: b64('{"name":"Ndèye Fàtou ✓"}'), messageId: 'u-1' } }),
      expected: { ok: true, messageId: 'u-1', attributes: {}, payload: { name: 'Ndèye Fàtou ✓' } },
    },
    {
      name: 'message_id (snake case, as some push envelopes carry it) when messageId is absent',
      event: event({ message: { data: b64('{}'), message_id: 'snake-7' } }),
      expected: { ok: true, messageId: 'snake-7', attributes: {}, payload: {} },
    },
    {
      name: 'messageId preferred over message_id',
      event: event({ message: { data: b64('{}'), messageId: 'camel', message_id: 'snake' } }),
      expected: { ok: true, messageId: 'camel', attributes: {}, payload: {} },
    },
    {
      name: 'the CloudEvent ID when the message has no ID',
      event: event({ message: { data: b64('{}') } }, 'ce-42'),
      expected: { ok: true, messageId: 'ce-42', attributes: {}, payload: {} },
    },
    {
      name: 'attributes that are not an object are dropped',
      event: event({ message: { data: b64('{}'), messageId: 'a-1', attributes: 'type=chunk' } }),
      expected: { ok: true, messageId: 'a-1', attributes: {}, payload: {} },
    },
    {
      name: 'a JSON scalar decodes (its shape is the handler\'s to check)',
      event: event({ message: { data: b64('42'), messageId: 's-1' } }),
      expected: { ok: true, messageId: 's-1', attributes: {}, payload: 42 },
    },
    {
      name: 'no data at all in the event',
      event: event(undefined, 'ce-nodata'),
      expected: { ok: false, messageId: 'ce-nodata', problem: 'the event has no Pub/Sub message (data.message)' },
    },
    {
      name: 'no message in the envelope',
      event: event({ subscription: 'projects/p/subscriptions/s' }, 'ce-nomsg'),
      expected: { ok: false, messageId: 'ce-nomsg', problem: 'the event has no Pub/Sub message (data.message)' },
    },
    {
      name: 'a message that is not an object',
      event: event({ message: 'hello' }, 'ce-str'),
      expected: { ok: false, messageId: 'ce-str', problem: 'the event has no Pub/Sub message (data.message)' },
    },
    {
      name: 'missing data',
      event: event({ message: { messageId: 'm-1', attributes: {} } }),
      expected: { ok: false, messageId: 'm-1', problem: 'the message has no data' },
    },
    {
      name: 'empty data',
      event: pubsubEvent(rawBase64(''), { messageId: 'm-2' }),
      expected: { ok: false, messageId: 'm-2', problem: 'the message has no data' },
    },
    {
      name: 'data that is not a string',
      event: event({ message: { data: { type: 'chunk' }, messageId: 'm-3' } }),
      expected: { ok: false, messageId: 'm-3', problem: 'the message has no data' },
    },
    {
      name: 'bad base64',
      event: pubsubEvent(rawBase64('{"type":"chunk"}'), { messageId: 'm-4' }),
      expected: { ok: false, messageId: 'm-4', problem: 'the message data is not base64' },
    },
    {
      name: 'base64 with a bad character',
      event: pubsubEvent(rawBase64('eyJ0eXBlIjoiY2h1bmsifQ==!'), { messageId: 'm-5' }),
      expected: { ok: false, messageId: 'm-5', problem: 'the message data is not base64' },
    },
    {
      name: 'base64 of non-JSON',
      event: pubsubEvent(rawBase64(b64('op-1,op-2,op-3')), { messageId: 'm-6' }),
      expected: { ok: false, messageId: 'm-6', problem: 'the message data is not JSON' },
    },
    {
      name: 'base64 of truncated JSON',
      event: pubsubEvent(rawBase64(b64('{"type":"chunk","ids":["a"')), { messageId: 'm-7' }),
      expected: { ok: false, messageId: 'm-7', problem: 'the message data is not JSON' },
    },
    {
      name: 'base64 of binary garbage',
      event: pubsubEvent(rawBase64(Buffer.from([0xff, 0xfe, 0x00, 0x01]).toString('base64')), { messageId: 'm-8' }),
      expected: { ok: false, messageId: 'm-8', problem: 'the message data is not JSON' },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      assert.deepEqual(decodePubsubEvent(c.event), c.expected);
    });
  }

  it('the message ID is a string even when the envelope carries a number', () => {
    const decoded = decodePubsubEvent(event({ message: { data: b64('{}'), messageId: 987654321 } }));
    assert.equal(decoded.messageId, '987654321');
  });
});

describe('describeIssues', () => {
  const cases: { name: string; issues: { path: PropertyKey[]; message: string }[]; expected: string }[] = [
    { name: 'one issue with a path', issues: [{ path: ['ids'], message: 'expected array' }], expected: 'ids: expected array' },
    { name: 'nested and indexed paths', issues: [{ path: ['ids', 0], message: 'expected string' }, { path: ['window', 'from'], message: 'must be an RFC 3339 timestamp' }], expected: 'ids.0: expected string; window.from: must be an RFC 3339 timestamp' },
    { name: 'an issue of the whole message', issues: [{ path: [], message: 'expected object' }], expected: '(message): expected object' },
  ];
  for (const c of cases) {
    it(c.name, () => assert.equal(describeIssues(c.issues), c.expected));
  }
});

describe('jobStateName', () => {
  it("names every state of Dataflow's JobState enum, from its number or its name", () => {
    const states = Object.entries(protos.google.dataflow.v1beta3.JobState).filter(([name]) => Number.isNaN(Number(name)));
    assert.ok(states.length >= 13);
    for (const [name, number] of states) {
      assert.equal(jobStateName(number), name);
      assert.equal(jobStateName(String(number)), name);
      assert.equal(jobStateName(name), name);
    }
  });

  for (const value of [99, -1, 1.5, '', 'DONE', 'job_state_done', null, undefined, {}]) {
    it(`${JSON.stringify(value) ?? 'undefined'} is no state`, () => assert.equal(jobStateName(value), undefined));
  }
});
