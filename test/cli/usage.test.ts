import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { consolidate, ROOT, type Ran } from '../support/cli';

/** The command line itself: help, version, suggestions, and every kind of bad usage (exit 2). */
describe('consolidate: the command line', function () {
  this.timeout(60_000);
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), 'cli-usage-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const run = (args: string[], env: Record<string, string> = {}) => consolidate(args, { cwd: dir, env });

  it('--version prints the package version', async () => {
    const { code, stdout } = await run(['--version']);
    assert.equal(code, 0);
    assert.equal(stdout.trim(), JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
  });

  it('--help lists every command; a command\'s --help gives only its options, with examples; `help COMMAND` is the same', async () => {
    const top = await run(['--help']);
    assert.equal(top.code, 0);
    for (const command of ['run', 'status', 'reconcile', 'replay', 'prune', 'sql', 'help']) assert.match(top.stdout, new RegExp(`^  ${command} `, 'm'));
    const status = await run(['status', '--help']);
    assert.equal(status.code, 0);
    assert.match(status.stdout, /^Usage: consolidate status \[options\]/);
    assert.match(status.stdout, /--limit <n>/);
    assert.match(status.stdout, /Examples:\n  consolidate status/);
    assert.doesNotMatch(status.stdout, /--demo-rows|--inject|--once/, 'run\'s options are not in status\'s help');
    const help = await run(['help', 'status']);
    assert.equal(help.code, 0);
    assert.equal(help.stdout, status.stdout);
  });

  it('no command: the help on stderr, exit 2', async () => {
    const { code, stderr } = await run([]);
    assert.equal(code, 2);
    assert.match(stderr, /Usage: consolidate \[options\] \[command\]/);
  });

  const refusals: { name: string; args: string[]; env?: Record<string, string>; says: RegExp }[] = [
    { name: 'a mistyped command, with a suggestion', args: ['stauts'], says: /unknown command 'stauts'[\s\S]*Did you mean status\?/ },
    { name: 'a mistyped option, with a suggestion', args: ['status', '--limt', '3'], says: /unknown option '--limt'[\s\S]*Did you mean --limit\?/ },
    { name: 'an option of another command', args: ['status', '--inject', 'duplicate'], says: /unknown option '--inject'/ },
    { name: '--once with --watch', args: ['run', '--once', '--watch'], says: /option '--watch' cannot be used with option '--once'|option '--once' cannot be used with option '--watch'/ },
    { name: '--now without an offset', args: ['run', '--once', '--now', '2026-03-10T09:30:00'], says: /'2026-03-10T09:30:00' is invalid\. it has no offset/ },
    { name: '--now on a day that does not exist', args: ['run', '--once', '--now', '2026-02-30T10:00:00Z'], says: /2026-02 has no day 30/ },
    { name: '--now at 24:00', args: ['status', '--now', '2026-01-15T24:00:00Z'], says: /24:00:00 is not a time of day/ },
    { name: 'a malformed --now', args: ['run', '--once', '--now', 'yesterday'], says: /expected an RFC 3339 timestamp with an offset/ },
    { name: 'a malformed --every', args: ['run', '--every', 'soon'], says: /expected a duration such as 90s/ },
    { name: 'a --limit of 0', args: ['status', '--limit', '0'], says: /expected a positive whole number/ },
    { name: 'an unknown backend', args: ['status', '--backend', 'aws'], says: /Allowed choices are local, gcp/ },
    { name: 'an unknown fault', args: ['run', '--inject', 'duplicate,bogus', '--state-dir', 'st'], says: /--inject: Unknown fault\(s\): bogus/ },
    { name: 'replay with --from alone', args: ['replay', '--from', '2026-01-15T06:00:00Z', '--state-dir', 'st'], says: /replay takes --from and --to/ },
    { name: 'replay with --from after --to', args: ['replay', '--from', '2026-01-15T07:00:00Z', '--to', '2026-01-15T06:00:00Z'], says: /--from 2026-01-15T07:00:00.000Z must be before --to/ },
    { name: 'replay with a window and a file', args: ['replay', '--from', '2026-01-15T06:00:00Z', '--to', '2026-01-15T07:00:00Z', '--ids-file', 'x'], says: /'--from <time>' cannot be used with option '--ids-file <file>'/ },
    { name: 'replay with a missing IDs file', args: ['replay', '--ids-file', 'none.txt'], says: /--ids-file none\.txt: .*no such file/i },
    { name: 'status on a folder that does not exist', args: ['status', '--state-dir', 'nowhere'], says: /No state folder at .*nowhere: nothing has run with it yet/ },
    { name: 'a state folder that is a file', args: ['status', '--state-dir', 'a-file'], says: /--state-dir .*a-file is a file, not a folder/ },
    { name: 'run with a state folder that is a file', args: ['run', '--once', '--state-dir', 'a-file'], says: /--state-dir .*a-file is a file, not a folder/ },
    { name: 'a warehouse file that does not exist', args: ['run', '--once', '--warehouse', 'nope.duckdb', '--state-dir', 'st2'], says: /No warehouse at .*nope\.duckdb/ },
    { name: 'the Google Cloud backend without project or bucket', args: ['status', '--backend', 'gcp'], says: /GCP_PROJECT is required when CONSOLIDATION_BACKEND=gcp; STATE_BUCKET is required when CONSOLIDATION_BACKEND=gcp; INITIAL_WATERMARK is required/ },
    { name: 'run on the Google Cloud backend', args: ['run', '--backend', 'gcp', '--project', 'my-project', '--bucket', 'my-bucket'], env: { INITIAL_WATERMARK: 'beginning' }, says: /`run` works on the local stack only; on Google Cloud, Cloud Scheduler runs the chain/ },
    { name: 'a profile that is not in the file', args: ['status', '--config', 'profiles.yaml', '--profile', 'staging'], says: /CONSOLIDATE_PROFILE \(staging\) is not a profile of .*profiles\.yaml; it has prod/ },
    { name: 'a profile with an unknown variable', args: ['status', '--config', 'profiles.yaml', '--profile', 'typo'], says: /STATE_BUKET in profile "typo" .* is not a configuration variable/ },
  ];
  describe('refusals (run four at a time)', () => {
    const answers = new Map<string, Promise<Ran>>();
    before(() => {
      writeFileSync(join(dir, 'a-file'), 'not a folder');
      writeFileSync(join(dir, 'profiles.yaml'), 'default: prod\nprofiles:\n  prod:\n    CONSOLIDATION_BACKEND: gcp\n    GCP_PROJECT: my-project\n    STATE_BUCKET: my-bucket\n  typo:\n    STATE_BUKET: x\n');
      let slot: Promise<unknown>[] = [];
      for (const c of refusals) {
        const previous = slot.length >= 4 ? slot.shift()! : Promise.resolve();
        const answer = previous.then(() => run(c.args, c.env));
        slot.push(answer);
        answers.set(c.name, answer);
      }
    });
    for (const c of refusals) {
      it(`refuses ${c.name}: exit 2 with the reason`, async () => {
        const { code, stdout, stderr } = await answers.get(c.name)!;
        assert.equal(code, 2, `exit ${code}: ${stdout}${stderr}`);
        assert.match(stderr, c.says);
      });
    }
  });

  it('status creates nothing, not even the folder it was pointed at', async () => {
    await run(['status', '--state-dir', 'nowhere']);
    assert.equal(existsSync(join(dir, 'nowhere')), false);
    assert.equal(existsSync(join(dir, '.consolidation')), false);
  });

  it('names every bad configuration variable in one message', async () => {
    const { code, stderr } = await run(['run', '--once', '--state-dir', 'st3'], { CHUNK_SIZE: '0', LOOKBACK: 'soon', USSD_TABLE: 'ussd-ops; DROP' });
    assert.equal(code, 2);
    for (const name of ['CHUNK_SIZE', 'LOOKBACK', 'USSD_TABLE']) assert.match(stderr, new RegExp(name));
  });
});
