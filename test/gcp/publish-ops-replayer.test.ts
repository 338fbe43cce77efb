import assert from 'node:assert/strict';
import { GoogleAuth, IdTokenClient } from 'google-auth-library';
import sinon from 'sinon';
import { PublishOpsReplayer } from '../../shared/gcp/publish-ops-replayer';
import { MemoryLogger } from '../support/fakes';

/** The audit's replays on Google Cloud: real GoogleAuth and IdTokenClient objects, only their network methods stubbed. */

const URL = 'https://ussd-publish-ops-abc123-ew.a.run.app';

function setup(answers: (() => Promise<unknown>)[]) {
  const auth = new GoogleAuth();
  const client = new IdTokenClient({ idTokenProvider: { fetchIdToken: async () => 'token' } as never, targetAudience: URL });
  const getIdTokenClient = sinon.stub(auth, 'getIdTokenClient').resolves(client);
  const request = sinon.stub(client, 'request');
  answers.forEach((answer, i) => request.onCall(i).callsFake(answer as never));
  const sleeps: number[] = [];
  const replayer = new PublishOpsReplayer({ auth, url: URL, logger: new MemoryLogger(), retryDelayMs: 5_000, sleep: async (ms) => void sleeps.push(ms) });
  return { getIdTokenClient, request, replayer, sleeps };
}

const httpError = (status: number, data: unknown) => Object.assign(new Error(`Request failed with status code ${status}`), { response: { status, data } });

describe('PublishOpsReplayer', () => {
  afterEach(() => sinon.restore());

  it('POSTs {"ids": [...]} to publishOps with an ID token for its URL, and reports the sealed batch', async () => {
    const { getIdTokenClient, request, replayer } = setup([async () => ({ status: 200, data: { status: 'sealed', batchId: '20260115T102000Z-abc123', idCount: 2 } })]);
    const outcome = await replayer.replayIds(['OP1', 'OP2']);
    sinon.assert.calledOnceWithExactly(getIdTokenClient, URL);
    sinon.assert.calledOnceWithExactly(request, { url: URL, method: 'POST', headers: { 'Content-Type': 'application/json' }, data: { ids: ['OP1', 'OP2'] }, responseType: 'json' });
    assert.deepEqual(outcome, { ok: true, batchId: '20260115T102000Z-abc123', merged: false, detail: 'publishOps sealed replay batch 20260115T102000Z-abc123 (2 IDs); the chain merges it' });
  });

  it('waits and tries again while a run holds the lease (409), at most three times', async () => {
    const held = async () => Promise.reject(httpError(409, { error: 'The lease is held by publishOps-x until 10:30' }));
    const ok = setup([held, held, async () => ({ status: 200, data: { status: 'sealed', batchId: 'b', idCount: 1 } })]);
    assert.equal((await ok.replayer.replayIds(['OP1'])).ok, true);
    assert.equal(ok.request.callCount, 3);
    assert.deepEqual(ok.sleeps, [5_000, 5_000]);
    sinon.restore();
    const never = setup([held, held, held, held]);
    const outcome = await never.replayer.replayIds(['OP1']);
    assert.equal(never.request.callCount, 3);
    assert.deepEqual(outcome, { ok: false, merged: false, detail: 'publishOps answered 409: The lease is held by publishOps-x until 10:30' });
  });

  it('reports a refusal at once with publishOps\' reason', async () => {
    const { request, replayer, sleeps } = setup([async () => Promise.reject(httpError(400, { error: 'ids lists 60000 IDs; one replay takes at most 50000' }))]);
    assert.deepEqual(await replayer.replayIds(['OP1']), { ok: false, merged: false, detail: 'publishOps answered 400: ids lists 60000 IDs; one replay takes at most 50000' });
    assert.equal(request.callCount, 1);
    assert.deepEqual(sleeps, []);
  });
});
