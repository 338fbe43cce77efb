import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rotateLog } from '../../shared/cli/session';
import { resolveSettings } from '../../shared/cli/settings';
import { folderNow } from '../../shared/cli/state-folder';
import { parseRfc3339 } from '../../shared/rfc3339';

describe('the CLI\'s small parts', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'cli-units-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  describe('RFC 3339 time arguments', () => {
    const cases: [string, string | RegExp][] = [
      ['2026-01-15T10:00:00Z', '2026-01-15T10:00:00.000Z'],
      ['2026-01-15T10:00:00.123456+01:00', '2026-01-15T09:00:00.123Z'],
      ['2026-01-15t10:00:00z', '2026-01-15T10:00:00.000Z'],
      ['2024-02-29T00:00:00Z', '2024-02-29T00:00:00.000Z'],
      ['2026-03-10T09:30:00', /no offset/],
      ['2026-03-10T09:30', /no offset/],
      ['2026-02-30T10:00:00Z', /2026-02 has no day 30/],
      ['2025-02-29T00:00:00Z', /2025-02 has no day 29/],
      ['2026-13-01T00:00:00Z', /month 13 does not exist/],
      ['2026-01-15T24:00:00Z', /not a time of day/],
      ['2026-01-15T23:60:00Z', /not a time of day/],
      ['2026-01-15T10:00:00+25:00', /offset \+25:00 is not an offset/],
      ['2026-01-15', /expected an RFC 3339 timestamp with an offset/],
      ['1768471200', /expected an RFC 3339 timestamp with an offset/],
    ];
    for (const [text, expected] of cases) {
      it(`${text} -> ${String(expected)}`, () => {
        const parsed = parseRfc3339(text);
        if (typeof expected === 'string') assert.equal(parsed instanceof Date ? parsed.toISOString() : parsed.problem, expected);
        else assert.match(parsed instanceof Date ? parsed.toISOString() : parsed.problem, expected);
      });
    }
  });

  it('the log is rotated past its size, three older files kept', () => {
    const log = join(dir, 'consolidate.log');
    for (let n = 1; n <= 5; n++) {
      writeFileSync(log, `generation ${n}\n`.padEnd(40, '.'));
      rotateLog(log, 32);
    }
    assert.equal(existsSync(log), false, 'the current file was moved away');
    assert.deepEqual([1, 2, 3].map((n) => readFileSync(`${log}.${n}`, 'utf8').slice(0, 12)), ['generation 5', 'generation 4', 'generation 3']);
    assert.equal(existsSync(`${log}.4`), false);
    writeFileSync(log, 'small');
    rotateLog(log, 32);
    assert.equal(readFileSync(log, 'utf8'), 'small', 'a file below the size stays');
  });

  it('the folder\'s clock: real time, or a simulated run\'s instant plus the real time since', () => {
    const real = new Date('2026-12-01T22:00:00.000Z');
    assert.deepEqual(folderNow(undefined, real), { now: real, simulated: false });
    const owner = { warehouse: '/w.duckdb', boundAt: '', lastRun: { clock: 'simulated' as const, now: '2026-01-15T10:02:00.000Z', at: '2026-12-01T21:50:00.000Z' } };
    assert.deepEqual(folderNow(owner, real), { now: new Date('2026-01-15T10:12:00.000Z'), simulated: true });
    assert.deepEqual(folderNow({ ...owner, lastRun: { ...owner.lastRun, clock: 'real' } }, real), { now: real, simulated: false });
  });

  it('settings: flags over the environment over the profile over the defaults', () => {
    const file = join(dir, 'config.yaml');
    writeFileSync(file, 'default: prod\nprofiles:\n  prod:\n    CONSOLIDATION_BACKEND: gcp\n    GCP_PROJECT: from-profile\n    STATE_BUCKET: profile-bucket\n    INITIAL_WATERMARK: beginning\n    REGION: us-central1\n    MAX_AHEAD: 2h\n');
    const fromProfile = resolveSettings({ config: file }, {});
    assert.deepEqual([fromProfile.config.backend, fromProfile.config.project, fromProfile.config.stateBucket, fromProfile.config.region, fromProfile.tool.MAX_AHEAD], ['gcp', 'from-profile', 'profile-bucket', 'us-central1', '2h']);
    assert.deepEqual(fromProfile.profile, { file, name: 'prod' });
    const layered = resolveSettings({ config: file, bucket: 'flag-bucket' }, { GCP_PROJECT: 'from-env', STATE_BUCKET: 'env-bucket' });
    assert.deepEqual([layered.config.project, layered.config.stateBucket], ['from-env', 'flag-bucket']);
    const none = resolveSettings({}, { XDG_CONFIG_HOME: join(dir, 'nothing-here') });
    assert.equal(none.config.backend, 'local');
    assert.equal(none.profile, undefined);
  });
});
