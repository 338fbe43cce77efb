import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { pipelineFilePath } from '../../shared/pipeline/file';
import { BLANK, BLANK_CODE_POINTS } from '../../shared/rejects';

/** The pipeline's blank-ID test (TRIM of a list of code points) is the quarantine's rule, character for character. */
describe('the pipeline file\'s blank characters', () => {
  it('are BLANK_CODE_POINTS, written out in the transactions\' filter', () => {
    const yaml = readFileSync(pipelineFilePath(), 'utf8');
    assert.ok(yaml.includes(`TRIM(t.transaction_id, CODE_POINTS_TO_STRING([${BLANK_CODE_POINTS.join(', ')}])) <> ''`));
  });

  it('are exactly the characters of the JavaScript class BLANK, over every code point', () => {
    const blank: number[] = [];
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      if (BLANK.test(String.fromCodePoint(cp))) blank.push(cp);
    }
    assert.deepEqual(blank, BLANK_CODE_POINTS);
  });
});
