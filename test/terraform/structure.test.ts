import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from '@cdktf/hcl2json';
import {
  TERRAFORM_DIR,
  allReferences,
  blocks,
  danglingReferences,
  interpolations,
  loadTerraform,
  parseTerraform,
  readTerraformSources,
  referencesIn,
  type TerraformConfig,
} from './model';

describe('terraform/: files, versions, variables, outputs, references', () => {
  let config: TerraformConfig;
  before(async () => {
    config = await loadTerraform();
  });

  describe('every .tf file is valid HCL', () => {
    for (const source of readTerraformSources()) {
      it(`parses ${source.name}`, async () => {
        const json = await parse(source.name, source.text);
        assert.ok(Object.keys(json).length > 0, `${source.name} declares nothing`);
      });
    }

    it('rejects invalid HCL, naming the file, line and column', async () => {
      await assert.rejects(parse('broken.tf', 'resource "google_pubsub_topic" "ids" {\n  name = "x"\n'), /broken\.tf:\d+,\d+/);
      await assert.rejects(parse('broken.tf', 'variable "x" {\n  type = string\n  default = \n}\n'), /broken\.tf:\d+,\d+/);
    });
  });

  it('has the files the issue asks for', () => {
    for (const name of ['versions.tf', 'variables.tf', 'outputs.tf', 'README.md']) assert.ok(existsSync(join(TERRAFORM_DIR, name)), `terraform/${name} is missing`);
    // audit.tf holds the audit's own variables and outputs beside its resources.
    const declaredIn = (kind: 'variable' | 'output', files: string[], name: string) => files.some((file) => config.files.find((f) => f.name === file)?.json[kind]?.[name]);
    assert.deepEqual([...config.variables.keys()].filter((name) => !declaredIn('variable', ['variables.tf', 'audit.tf'], name)), [], 'variables are declared outside variables.tf');
    assert.deepEqual([...config.outputs.keys()].filter((name) => !declaredIn('output', ['outputs.tf', 'audit.tf'], name)), [], 'outputs are declared outside outputs.tf');
  });

  describe('versions.tf pins Terraform and every provider', () => {
    it('requires a Terraform version with a lower and an upper bound', () => {
      const required = config.terraform.map((t) => t.required_version).filter(Boolean);
      assert.equal(required.length, 1);
      assert.match(required[0], />=\s*1\.\d+/);
      assert.match(required[0], /<\s*2\.0/);
    });

    it('gives every provider a source and a bounded version', () => {
      const providers = Object.assign({}, ...config.terraform.flatMap((t) => blocks(t, 'required_providers'))) as Record<string, { source: string; version: string }>;
      assert.deepEqual(Object.keys(providers).sort(), ['archive', 'google', 'google-beta', 'time']);
      for (const [name, spec] of Object.entries(providers)) {
        assert.equal(spec.source, `hashicorp/${name}`);
        assert.match(spec.version, />=\s*\d+\.\d+/, `${name} has no lower bound`);
        assert.match(spec.version, /<\s*\d+\.\d+/, `${name} has no upper bound`);
      }
    });

    it('uses only providers it pins', () => {
      const pinned = new Set(Object.keys(Object.assign({}, ...config.terraform.flatMap((t) => blocks(t, 'required_providers')))));
      const used = new Set([...config.resources.keys(), ...config.data.keys()].map((address) => address.split('_')[0]));
      for (const body of config.resources.values()) if (typeof body.provider === 'string') used.add(body.provider.replace(/^\$\{(.*)\}$/, '$1'));
      used.delete('terraform'); // terraform_data is built in
      for (const provider of used) assert.ok(pinned.has(provider), `provider ${provider} is used but not pinned`);
    });

    it('configures the beta provider like the main one, so beta resources land in the same project and region', () => {
      const google = config.providers.get('google')!;
      const beta = config.providers.get('google-beta')!;
      for (const key of ['project', 'region', 'default_labels']) assert.equal(beta[key], google[key], key);
    });

    it('tells to commit the lock file that the first init writes', () => {
      const versions = config.files.find((f) => f.name === 'versions.tf')!.text;
      assert.match(versions, /\.terraform\.lock\.hcl/);
      const readme = readFileSync(join(TERRAFORM_DIR, 'README.md'), 'utf8');
      assert.match(readme, /commit[^.]*`?\.terraform\.lock\.hcl`?|`?\.terraform\.lock\.hcl`?[^.]*commit/i);
    });
  });

  describe('variables.tf: every variable typed, described and validated', () => {
    it('declares the variables', () => {
      assert.ok(config.variables.size >= 30, `only ${config.variables.size} variables`);
      for (const name of ['project_id', 'region']) assert.equal(config.variables.get(name)?.default, undefined, `${name} must be required`);
    });

    it('gives each a type, a description of a sentence, and a validation of itself', () => {
      for (const [name, body] of config.variables) {
        assert.match(String(body.type), /^\$\{(string|number|bool|map\(string\)|list\(string\))\}$/, `${name} has no type`);
        assert.ok(typeof body.description === 'string' && body.description.length >= 20, `${name} has no real description`);
        const validations = blocks(body, 'validation');
        assert.ok(validations.length > 0, `${name} has no validation`);
        for (const validation of validations) {
          assert.ok(referencesIn(String(validation.condition).replace(/^\$\{|\}$/g, '')).includes(`var.${name}`), `${name}: the validation does not test var.${name}`);
          assert.ok(typeof validation.error_message === 'string' && validation.error_message.startsWith(name), `${name}: the error message should name the variable`);
        }
        assert.equal(body.nullable, false, `${name} should not accept null`);
      }
    });

    it('uses every variable and every local', () => {
      const used = new Set(allReferences(config).map((r) => r.reference.split('.').slice(0, 2).join('.')));
      for (const name of config.variables.keys()) assert.ok(used.has(`var.${name}`), `variable ${name} is never used`);
      for (const name of config.locals.keys()) assert.ok(used.has(`local.${name}`), `local ${name} is never used`);
    });
  });

  it('outputs.tf: every output described', () => {
    assert.ok(config.outputs.size >= 10);
    for (const [name, body] of config.outputs) {
      assert.ok(typeof body.description === 'string' && body.description.length >= 15, `output ${name} has no description`);
      assert.ok('value' in body, `output ${name} has no value`);
    }
  });

  describe('every reference resolves', () => {
    it('to a declared resource, data source, variable or local', () => {
      assert.ok(allReferences(config).length > 150, 'the reference scan found suspiciously few references');
      assert.deepEqual(danglingReferences(config), []);
    });

    it('finds dangling references when there are some', async () => {
      const broken = await parseTerraform([
        {
          name: 'broken.tf',
          text: `
variable "known" {
  type = string
}
locals {
  names = [for key, topic in google_pubsub_topic.real : "\${key}-\${topic.name}-\${google_pubsub_topic.missing.id}"]
  fine  = "$\${not_a_reference.at_all}"
}
resource "google_pubsub_topic" "real" {
  name       = var.known
  labels     = { owner = var.unknown }
  depends_on = [google_service_account.absent]
  dynamic "label" {
    for_each = local.names
    content { value = label.value }
  }
}
resource "google_pubsub_subscription" "s" {
  topic = data.google_pubsub_topic.nowhere.id
  name  = "\${local.fine}-\${local.nothing}"
  # google_comment.mentions.are_not_references
}
`,
        },
      ]);
      assert.deepEqual(danglingReferences(broken).map((r) => r.reference).sort(), [
        'data.google_pubsub_topic.nowhere',
        'google_pubsub_topic.missing.id',
        'google_service_account.absent',
        'local.nothing',
        'var.unknown',
      ]);
    });

    it('reads interpolations as Terraform does', () => {
      assert.deepEqual(interpolations('gs://${google_storage_bucket.state.name}/${var.x}'), ['google_storage_bucket.state.name', 'var.x']);
      assert.deepEqual(interpolations('echo "$${HOME}"'), []);
      assert.deepEqual(referencesIn('format("%s.%s", "roles/bigquery.dataViewer", google_x.y.z) # var.commented'), ['google_x.y.z']);
      assert.deepEqual(referencesIn('[for f in local.files : "${f}:${filesha256("${local.root}/${f}")}"]'), ['local.files', 'local.root']);
    });
  });

  describe('terraform/README.md', () => {
    let readme = '';
    before(() => {
      readme = readFileSync(join(TERRAFORM_DIR, 'README.md'), 'utf8');
    });
    const tableNames = (heading: string): string[] => {
      const section = readme.split(/^## /m).find((part) => part.startsWith(heading));
      assert.ok(section, `no "## ${heading}" section`);
      return section.split('\n').flatMap((line) => /^\| `([a-z0-9_]+)` \|/.exec(line)?.[1] ?? []);
    };

    it('has an inputs table listing exactly the variables', () => {
      assert.deepEqual(tableNames('Inputs').sort(), [...config.variables.keys()].sort());
    });

    it('gives each input its default as in variables.tf', () => {
      for (const [name, body] of config.variables) {
        const row = readme.split('\n').find((line) => line.startsWith(`| \`${name}\` |`))!;
        if (body.default === undefined) {
          assert.match(row, /required/, `${name} should be marked required`);
          continue;
        }
        const shown = body.default === '' ? '""' : typeof body.default === 'string' ? body.default : JSON.stringify(body.default);
        assert.ok(row.includes(`\`${shown}\``), `${name}: the README's default differs from ${shown}`);
      }
    });

    it('has an outputs table listing exactly the outputs', () => {
      assert.deepEqual(tableNames('Outputs').sort(), [...config.outputs.keys()].sort());
    });

    it('walks a new user from an empty project to a running chain: roles, deploy.sh, lock file, check.sh', () => {
      const walk = readme.split(/^## /m).find((part) => part.startsWith('From an empty project to a running chain'));
      assert.ok(walk, 'no "## From an empty project to a running chain" section');
      for (const needed of ['Owner', 'Project IAM Admin', 'Role Administrator', 'serviceusage.googleapis.com', 'terraform/deploy.sh', '.terraform.lock.hcl', 'terraform/check.sh', '### What the first apply creates, in order', 'time_sleep', 'google_project_service_identity']) {
        assert.ok(walk.includes(needed), `the walkthrough does not mention ${needed}`);
      }
      for (const script of ['deploy.sh', 'check.sh']) assert.ok((statSync(join(TERRAFORM_DIR, script)).mode & 0o111) !== 0, `${script} is not executable`);
    });

    it('says where a poison event ends up, for the push-delivered functions and for mergeOnComplete', () => {
      const section = readme.split(/^### /m).find((part) => part.startsWith('Dead letters'));
      assert.ok(section, 'no "### Dead letters" section');
      const [push, merge] = section.split(/^\* /m).slice(1);
      assert.match(push, /collectIds and launchDataflow/);
      assert.match(push, /max_delivery_attempts/);
      assert.match(push, /consolidation-dead-letter-inspect/);
      assert.match(merge, /mergeOnComplete/);
      assert.match(merge, /reconciler/);
      assert.match(merge, /stuck_after/);
    });

    it('tears down without losing the consolidated table, with a command naming resources that exist', () => {
      const teardown = readme.split(/^## /m).find((part) => part.startsWith('Tearing it down'))!;
      const command = /terraform state rm ([^\n]+)/.exec(teardown);
      assert.ok(command, 'no terraform state rm command');
      const addresses = command[1].trim().split(/\s+/);
      assert.ok(addresses.includes('google_bigquery_table.consolidated'), 'the consolidated table is not kept');
      for (const address of addresses) assert.ok(config.resources.has(address), `${address} is not a resource of the configuration`);
    });

    it('gives an example terraform.tfvars that parses and sets only declared variables, the required ones included', async () => {
      const example = /```hcl\n# terraform\.tfvars\n([\s\S]*?)```/.exec(readme);
      assert.ok(example, 'no ```hcl block starting with "# terraform.tfvars"');
      const values = await parse('terraform.tfvars', example[1]);
      for (const name of Object.keys(values)) assert.ok(config.variables.has(name), `the example sets ${name}, which is not a variable`);
      for (const [name, body] of config.variables) if (body.default === undefined) assert.ok(name in values, `the example lacks the required ${name}`);
    });
  });

  it('runs no provisioner: everything the apply sets up is a resource Terraform reads back and repairs', () => {
    for (const [address, body] of config.resources) {
      assert.equal(body.provisioner, undefined, `${address} runs a provisioner`);
      assert.ok(!address.startsWith('terraform_data.') && !address.startsWith('null_resource.'), `${address} hides work from Terraform`);
    }
  });
});
