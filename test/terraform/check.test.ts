import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TERRAFORM_DIR, loadTerraform } from './model';

/**
 * terraform/check.sh, the README's one command to check that the deployed chain runs, against a
 * stand-in `terraform` (its outputs) and `gcloud` (what the project answers).
 */
describe('terraform/check.sh, run against stand-ins for terraform and gcloud', () => {
  let bin: string;
  const OUTPUTS: Record<string, string> = { project_id: 'ussd-prod', region: 'europe-west10', scheduler_job: 'ussd-publish-ops', state_bucket: 'ussd-prod-ussd-state', watermark_object: 'last_timestamp.txt', name_prefix: 'ussd' };

  beforeEach(() => {
    bin = mkdtempSync(join(tmpdir(), 'fake-tools-'));
    const outputs = Object.entries(OUTPUTS).map(([name, value]) => `  ${name}) printf '%s' '${value}' ;;`).join('\n');
    writeFileSync(join(bin, 'terraform'), `#!/bin/bash\necho "terraform $*" >> "$CALLS"\ncase "\${@: -1}" in\n${outputs}\n  *) exit 1 ;;\nesac\n`);
    writeFileSync(
      join(bin, 'gcloud'),
      '#!/bin/bash\necho "gcloud $*" >> "$CALLS"\ncase "$1 $2" in\n  "logging read") printf "%s" "$ERRORS" ;;\n  "storage objects") [[ -n "$MOVED" ]] && printf "%s\\n" "$MOVED" || exit 1 ;;\n  "storage ls") printf "%s" "$OPEN" ;;\nesac\n',
    );
    chmodSync(join(bin, 'terraform'), 0o755);
    chmodSync(join(bin, 'gcloud'), 0o755);
  });
  afterEach(() => rmSync(bin, { recursive: true, force: true }));

  const run = (env: Record<string, string>) => {
    const calls = join(bin, 'calls');
    writeFileSync(calls, '');
    const result = spawnSync('/bin/bash', [join(TERRAFORM_DIR, 'check.sh')], {
      env: { PATH: `${bin}:/usr/bin:/bin`, CALLS: calls, CHECK_INTERVAL: '0', ERRORS: '', OPEN: '', MOVED: '', ...env },
      encoding: 'utf8',
    });
    return { ...result, calls: readFileSync(calls, 'utf8').trim().split('\n') };
  };

  it('reads only outputs the configuration declares', async () => {
    const config = await loadTerraform();
    for (const name of Object.keys(OUTPUTS)) assert.ok(config.outputs.has(name), `output ${name} is missing`);
  });

  it('starts a cycle and succeeds once the watermark moved and no batch is open', () => {
    const result = run({ MOVED: '2999-01-01T00:00:00Z' });
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /OK: the watermark moved/);
    assert.ok(result.calls.includes('gcloud scheduler jobs run ussd-publish-ops --location=europe-west10 --project=ussd-prod --quiet'));
    assert.ok(result.calls.includes('gcloud storage objects describe gs://ussd-prod-ussd-state/last_timestamp.txt --project=ussd-prod --format=value(update_time.date("%Y-%m-%dT%H:%M:%SZ", tz=UTC))'), 'the update time is read in the format the start time is written in');
    assert.ok(result.calls.some((c) => c.startsWith('gcloud storage ls gs://ussd-prod-ussd-state/open/')));
  });

  it('fails, showing them, when a function logged an error', () => {
    const result = run({ MOVED: '2999-01-01T00:00:00Z', ERRORS: '2026-12-01T10:00:00Z\tussd-merge-on-complete\tMERGE failed' });
    assert.equal(result.status, 1);
    assert.match(result.stderr, /FAILED: the functions logged errors[\s\S]*MERGE failed/);
  });

  it('fails after its timeout while a batch is still open, naming it', () => {
    const result = run({ MOVED: '2999-01-01T00:00:00Z', OPEN: 'gs://ussd-prod-ussd-state/open/20261201T100000Z-abc123\n', CHECK_TIMEOUT: '0' });
    assert.equal(result.status, 1);
    assert.match(result.stderr, /still open:\n.*20261201T100000Z-abc123/);
  });

  it('fails after its timeout when the watermark never moved', () => {
    const result = run({ MOVED: '2000-01-01T00:00:00Z', CHECK_TIMEOUT: '0' });
    assert.equal(result.status, 1);
    assert.match(result.stderr, /watermark moved at '2000-01-01T00:00:00Z'/);
  });
});
