import assert from 'node:assert/strict';
import { makeAuditConsolidation } from '../../functions/audit-function';
import type { AuditDependencies } from '../../functions/audit';
import { httpCall, makeFakes } from '../support/fakes';

/** The audit's HTTP function: what it accepts and how it answers (the audit itself: test/e2e/audit.test.ts). */

function handler(env: Record<string, string> = {}, watermark?: string) {
  const fakes = makeFakes(env);
  if (watermark) void fakes.store.create(fakes.config.watermarkObject, watermark);
  const deps: AuditDependencies = { ...fakes.deps, pipeline: { text: 'unused', file: 'consolidation.yaml' } };
  return { fakes, audit: makeAuditConsolidation(deps) };
}

async function call(audit: ReturnType<typeof makeAuditConsolidation>, method: string, body?: unknown) {
  const { req, res, response } = httpCall(method, body);
  await audit(req, res);
  return response;
}

describe('auditConsolidation (HTTP)', () => {
  it('takes POST only', async () => {
    const response = await call(handler().audit, 'GET');
    assert.equal(response.statusCode, 405);
    assert.equal(response.headers.allow, 'POST');
  });

  const refused: [string, unknown, Record<string, string>, RegExp][] = [
    ['an unknown field', { days: 3 }, {}, /Unrecognized key|days/],
    ['repair that is not a boolean', { repair: 'yes' }, {}, /repair/],
    ['a day that does not exist', { from: '2026-02-30' }, {}, /--from 2026-02-30: expected a day/],
    ['days after the watermark', { to: '2026-01-16' }, {}, /after the watermark's day \(2026-01-15\)/],
    ['from after to', { from: '2026-01-15', to: '2026-01-14' }, {}, /after --to/],
    ['repair with nowhere to replay', { repair: true }, {}, /--repair needs a way to replay/],
    ['AUDIT_REPAIR=true with nowhere to replay (an empty body)', undefined, { AUDIT_REPAIR: 'true' }, /--repair needs a way to replay/],
  ];
  for (const [name, body, env, message] of refused) {
    it(`answers 400 to ${name}, and reads nothing from BigQuery`, async () => {
      const { fakes, audit } = handler(env, '2026-01-15T10:00:00.000Z');
      const response = await call(audit, 'POST', body);
      assert.equal(response.statusCode, 400, JSON.stringify(response.body));
      assert.match((response.body as { error: string }).error, message);
      assert.deepEqual(fakes.warehouse.statements, []);
    });
  }

  it('answers 200 "nothing-consolidated" before the first cycle', async () => {
    const response = await call(handler().audit, 'POST', {});
    assert.equal(response.statusCode, 200);
    assert.equal((response.body as { outcome: string }).outcome, 'nothing-consolidated');
  });
});
