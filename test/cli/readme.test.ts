import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { END, helpReference, START } from '../../shared/cli/help-doc';
import { EXIT } from '../../shared/cli/exit';
import { ROOT } from '../support/cli';

describe('README: the command-line reference', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

  it('is the real --help output of every command (`npm run readme:cli` regenerates it)', async function () {
    this.timeout(30_000);
    const start = readme.indexOf(START);
    const end = readme.indexOf(END);
    assert.ok(start >= 0 && end > start, 'the README has the generated block');
    assert.equal(readme.slice(start, end + END.length), await helpReference(), 'README.md is out of date: run `npm run readme:cli`');
  });

  it('documents every exit code in one table', () => {
    for (const code of new Set(Object.values(EXIT))) assert.match(readme, new RegExp(`^\\| \`${code}\` \\|`, 'm'), `exit code ${code}`);
  });
});
