import assert from 'node:assert/strict';
import { getFunction } from '@google-cloud/functions-framework/testing';
import { AUDIT_FUNCTION_NAME, FUNCTION_NAMES } from '../../functions/registry';

describe('the deployed entry point (functions/index.ts)', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  it('registers the four functions under their entry-point names with Google Cloud adapters', () => {
    process.env = { ...saved, CONSOLIDATION_BACKEND: 'gcp', GCP_PROJECT: 'ussd-consolidation', STATE_BUCKET: 'ussd-consolidation-state', INITIAL_WATERMARK: '2026-01-01T00:00:00Z' };
    delete require.cache[require.resolve('../../functions/index')];
    require('../../functions/index');
    for (const name of FUNCTION_NAMES) assert.equal(typeof getFunction(name), 'function', name);
    assert.equal(typeof getFunction(AUDIT_FUNCTION_NAME), 'function', 'the audit');
  });

  it('stops start-up with one message naming every bad variable', () => {
    process.env = { ...saved, CONSOLIDATION_BACKEND: 'gcp', CHUNK_SIZE: 'lots', GCP_PROJECT: '', STATE_BUCKET: '' };
    delete require.cache[require.resolve('../../functions/index')];
    assert.throws(() => require('../../functions/index'), (error: Error) => ['CHUNK_SIZE', 'GCP_PROJECT', 'STATE_BUCKET', 'INITIAL_WATERMARK'].every((name) => error.message.includes(name)));
  });

  it('refuses the local backend, which runs through `consolidate run`', () => {
    process.env = { ...saved, CONSOLIDATION_BACKEND: 'local' };
    delete require.cache[require.resolve('../../functions/index')];
    assert.throws(() => require('../../functions/index'), /consolidate run/);
  });
});
