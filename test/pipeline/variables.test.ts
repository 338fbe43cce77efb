import assert from 'node:assert/strict';
import { checkPipelineVariables, timestampLiteral } from '../../shared/pipeline/variables';

const GOOD = {
  as_of: "TIMESTAMP '2026-01-15 10:20:00.000000+00:00'",
  read_after: "TIMESTAMP '2025-12-16 09:45:00.000000+00:00'",
  ids_table: '`my-project.consolidation_staging.ids_x`',
  ussd_table: '`my-project.source_dataset.ussd_operations`',
  transactions_table: '"main"."transactiongu"',
  services_table: '"main"."services"',
  agents_table: '"main"."agents"',
  output_table: 'my-project:consolidation_staging.enriched_x',
};

describe('the pipeline\'s jinja variables (invariant 6 where Beam YAML takes no parameters)', () => {
  describe('timestampLiteral: RFC 3339 to a canonical UTC literal', () => {
    const cases: [string, string][] = [
      ['2026-01-15T10:20:00Z', "TIMESTAMP '2026-01-15 10:20:00.000000+00:00'"],
      ['2026-01-15T10:20:00.123Z', "TIMESTAMP '2026-01-15 10:20:00.123000+00:00'"],
      ['2026-01-15T10:20:00.1234567z', "TIMESTAMP '2026-01-15 10:20:00.123456+00:00'"],
      ['2026-01-15T11:20:00.5+01:00', "TIMESTAMP '2026-01-15 10:20:00.500000+00:00'"],
      ['2026-01-01T00:30:00-01:00', "TIMESTAMP '2026-01-01 01:30:00.000000+00:00'"],
      ['1969-12-02T00:00:00.000Z', "TIMESTAMP '1969-12-02 00:00:00.000000+00:00'"],
    ];
    for (const [input, literal] of cases) it(`${input} -> ${literal}`, () => assert.equal(timestampLiteral(input), literal));

    const bad = [
      '2026-01-15 10:20:00Z',
      '2026-01-15T10:20Z',
      '2026-02-30T10:20:00Z',
      '2026-01-15T24:00:00Z',
      '2026-01-15T10:20:00',
      "2026-01-15T10:20:00Z' OR TRUE --",
      "2026-01-15T10:20:00Z'",
      '',
      'now',
    ];
    for (const input of bad) it(`refuses ${JSON.stringify(input)}`, () => assert.throws(() => timestampLiteral(input), /is not an RFC 3339 timestamp/));
  });

  describe('checkPipelineVariables', () => {
    it('accepts the variables launchDataflow builds, on either engine', () => assert.doesNotThrow(() => checkPipelineVariables(GOOD)));

    const bad: [string, Record<string, string>, RegExp][] = [
      ['a raw timestamp', { ...GOOD, as_of: '2026-01-15T10:20:00Z' }, /as_of/],
      ['a literal with SQL after it', { ...GOOD, read_after: "TIMESTAMP '2025-12-16 09:45:00.000000+00:00' OR TRUE" }, /read_after/],
      ['a literal in another zone', { ...GOOD, as_of: "TIMESTAMP '2026-01-15 10:20:00.000000+01:00'" }, /as_of/],
      ['a table name with a quote', { ...GOOD, ussd_table: '"main"."ussd" WHERE 1=1 --"' }, /ussd_table/],
      ['an unquoted source table', { ...GOOD, agents_table: 'main.agents' }, /agents_table/],
      ['an unknown variable', { ...GOOD, params_table: '"s"."t"' }, /params_table is not a variable/],
      ['a missing variable', Object.fromEntries(Object.entries(GOOD).filter(([k]) => k !== 'read_after')), /read_after is missing/],
    ];
    for (const [what, variables, problem] of bad) {
      it(`refuses ${what}`, () => assert.throws(() => checkPipelineVariables(variables), (error: Error) => /Refusing to render/.test(error.message) && problem.test(error.message)));
    }
  });
});
