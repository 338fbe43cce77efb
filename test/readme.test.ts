import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VARIABLES } from '../shared/config';

describe('README', () => {
  const readme = readFileSync(join(__dirname, '..', 'README.md'), 'utf8');
  for (const [name, spec] of Object.entries(VARIABLES)) {
    it(`documents ${name} with its default`, () => {
      const row = readme.split('\n').find((line) => line.startsWith(`| \`${name}\` |`));
      assert.ok(row, `no row for ${name} in the configuration table`);
      const fallback = (spec as { default?: string }).default;
      if (fallback) assert.ok(row.includes(`\`${fallback}\``), `the row of ${name} does not give its default ${fallback}`);
    });
  }
  it('gives the two commands of a fresh clone', () => {
    assert.match(readme, /npm start/);
    assert.match(readme, /npm test/);
  });
});
