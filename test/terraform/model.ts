import { parse } from '@cdktf/hcl2json';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The Terraform configuration as data, for tests that prove it offline: every `.tf` file parsed
 * with @cdktf/hcl2json (which rejects invalid HCL with file, line and column), the blocks indexed
 * by address, and the few analyses the tests need (references, IAM grants, comments).
 */

export const TERRAFORM_DIR = join(__dirname, '..', '..', 'terraform');
export const REPO_ROOT = join(__dirname, '..', '..');

// hcl2json gives Terraform JSON: untyped by nature.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Body = Record<string, any>;

export interface TerraformSource {
  name: string;
  text: string;
}

export interface TerraformConfig {
  files: (TerraformSource & { json: Body })[];
  /** `type.name` -> body */
  resources: Map<string, Body>;
  /** `type.name` (without `data.`) -> body */
  data: Map<string, Body>;
  variables: Map<string, Body>;
  outputs: Map<string, Body>;
  locals: Map<string, unknown>;
  terraform: Body[];
  providers: Map<string, Body>;
  /** Where each resource or data block is declared (`type.name` or `data.type.name`). */
  positions: Map<string, { file: string; line: number }>;
}

/** The `.tf` files of a folder. */
export function readTerraformSources(dir: string = TERRAFORM_DIR): TerraformSource[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.tf'))
    .sort()
    .map((name) => ({ name, text: readFileSync(join(dir, name), 'utf8') }));
}

/** Parses the files into one configuration; rejects (with hcl2json's message) on invalid HCL. */
export async function parseTerraform(sources: TerraformSource[]): Promise<TerraformConfig> {
  const config: TerraformConfig = {
    files: [],
    resources: new Map(),
    data: new Map(),
    variables: new Map(),
    outputs: new Map(),
    locals: new Map(),
    terraform: [],
    providers: new Map(),
    positions: new Map(),
  };
  for (const source of sources) {
    const json = await parse(source.name, source.text);
    config.files.push({ ...source, json });
    for (const [type, named] of Object.entries((json.resource ?? {}) as Record<string, Record<string, Body[]>>)) {
      for (const [name, bodies] of Object.entries(named)) addUnique(config.resources, `${type}.${name}`, bodies[0], source.name);
    }
    for (const [type, named] of Object.entries((json.data ?? {}) as Record<string, Record<string, Body[]>>)) {
      for (const [name, bodies] of Object.entries(named)) addUnique(config.data, `${type}.${name}`, bodies[0], source.name);
    }
    for (const [name, bodies] of Object.entries((json.variable ?? {}) as Record<string, Body[]>)) addUnique(config.variables, name, bodies[0], source.name);
    for (const [name, bodies] of Object.entries((json.output ?? {}) as Record<string, Body[]>)) addUnique(config.outputs, name, bodies[0], source.name);
    for (const block of (json.locals ?? []) as Body[]) {
      for (const [name, value] of Object.entries(block)) addUnique(config.locals, name, value, source.name);
    }
    config.terraform.push(...((json.terraform ?? []) as Body[]));
    for (const [name, bodies] of Object.entries((json.provider ?? {}) as Record<string, Body[]>)) addUnique(config.providers, name, bodies[0], source.name);
    source.text.split('\n').forEach((line, index) => {
      const match = /^(resource|data)\s+"([^"]+)"\s+"([^"]+)"/.exec(line);
      if (match) config.positions.set(`${match[1] === 'data' ? 'data.' : ''}${match[2]}.${match[3]}`, { file: source.name, line: index });
    });
  }
  return config;
}

function addUnique<T>(map: Map<string, T>, key: string, value: T, file: string): void {
  if (map.has(key)) throw new Error(`${key} is declared twice (again in ${file})`);
  map.set(key, value);
}

let cached: Promise<TerraformConfig> | undefined;

/** The repository's configuration, parsed once per test run. */
export function loadTerraform(): Promise<TerraformConfig> {
  cached ??= parseTerraform(readTerraformSources());
  return cached;
}

/** The first (only) instance of a nested block, or undefined. */
export function block(body: Body | undefined, name: string): Body | undefined {
  const value = body?.[name];
  return Array.isArray(value) ? (value[0] as Body | undefined) : undefined;
}

/** Every instance of a nested block. */
export function blocks(body: Body | undefined, name: string): Body[] {
  const value = body?.[name];
  return Array.isArray(value) ? (value as Body[]) : [];
}

/** A resource by address, or an assertion-friendly error. */
export function resource(config: TerraformConfig, address: string): Body {
  const body = config.resources.get(address);
  if (!body) throw new Error(`no resource ${address} in terraform/`);
  return body;
}

/** The resources of one type, by name. */
export function resourcesOfType(config: TerraformConfig, type: string): Map<string, Body> {
  const out = new Map<string, Body>();
  for (const [address, body] of config.resources) if (address.startsWith(`${type}.`)) out.set(address.slice(type.length + 1), body);
  return out;
}

// --- Expressions -------------------------------------------------------------------------------

interface Scanned {
  /** The expression with its string literals blanked and its comments removed. */
  code: string;
  /** The expressions interpolated inside its string literals. */
  nested: string[];
  end: number;
}

/**
 * Reads an expression from `start` up to the `}` that closes it (or the end of the text), keeping
 * the code outside string literals and collecting the interpolations inside them.
 */
function scanExpression(text: string, start: number): Scanned {
  let code = '';
  const nested: string[] = [];
  let depth = 0;
  let i = start;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      i = scanString(text, i + 1, nested);
      code += '""';
      continue;
    }
    if (c === '#' || (c === '/' && text[i + 1] === '/')) {
      while (i < text.length && text[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && text[i + 1] === '*') {
      const close = text.indexOf('*/', i + 2);
      i = close < 0 ? text.length : close + 2;
      continue;
    }
    if (c === '{') depth++;
    if (c === '}') {
      if (depth === 0) return { code, nested, end: i + 1 };
      depth--;
    }
    code += c;
    i++;
  }
  return { code, nested, end: i };
}

/** Skips a quoted string from after its opening quote; returns the index after the closing one. */
function scanString(text: string, start: number, nested: string[]): number {
  let i = start;
  while (i < text.length) {
    if (text[i] === '\\') {
      i += 2;
    } else if (text[i] === '"') {
      return i + 1;
    } else if (text.startsWith('$${', i) || text.startsWith('%%{', i)) {
      i += 3;
    } else if (text.startsWith('${', i) || text.startsWith('%{', i)) {
      const inner = scanExpression(text, i + 2);
      nested.push(text.slice(i + 2, inner.end - 1));
      i = inner.end;
    } else {
      i++;
    }
  }
  return i;
}

/** The expressions interpolated in a Terraform JSON string (`${...}`; `$${` is a literal). */
export function interpolations(template: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < template.length) {
    if (template.startsWith('$${', i) || template.startsWith('%%{', i)) {
      i += 3;
    } else if (template.startsWith('${', i) || template.startsWith('%{', i)) {
      const scanned = scanExpression(template, i + 2);
      out.push(template.slice(i + 2, scanned.end - 1));
      i = scanned.end;
    } else {
      i++;
    }
  }
  return out;
}

/** The traversals an expression refers to, as their first three segments (`google_x.y.attr`, `var.name`). */
export function referencesIn(expression: string, bound: Set<string> = new Set()): string[] {
  const { code, nested } = scanExpression(expression, 0);
  const names = new Set(bound);
  for (const match of code.matchAll(/\bfor\s+([A-Za-z_]\w*)(?:\s*,\s*([A-Za-z_]\w*))?\s+in\b/g)) {
    names.add(match[1]);
    if (match[2]) names.add(match[2]);
  }
  const out: string[] = [];
  for (const match of code.matchAll(/(?<![\w.])([A-Za-z_]\w*)\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?/g)) {
    if (!names.has(match[1])) out.push(match.slice(1).filter(Boolean).join('.'));
  }
  for (const inner of nested) out.push(...referencesIn(inner, names));
  return out;
}

/** Every string in a JSON value, with the path that leads to it. */
export function stringsIn(value: unknown, path = ''): { path: string; value: string }[] {
  if (typeof value === 'string') return [{ path, value }];
  if (Array.isArray(value)) return value.flatMap((item, index) => stringsIn(item, `${path}[${index}]`));
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([key, item]) => stringsIn(item, path ? `${path}.${key}` : key));
  return [];
}

/** Names that iterate in dynamic blocks (`dynamic "source"` makes `source.value` valid inside). */
function dynamicIterators(value: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) value.forEach((item) => dynamicIterators(item, out));
  else if (value && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (key === 'dynamic' && item && typeof item === 'object') {
        for (const [label, bodies] of Object.entries(item)) {
          out.add(label);
          for (const body of bodies as Body[]) if (typeof body.iterator === 'string') out.add(body.iterator);
        }
      }
      dynamicIterators(item, out);
    }
  }
  return out;
}

const BUILT_IN_ROOTS = new Set(['path', 'terraform', 'count', 'each', 'self']);

export interface Reference {
  /** The traversal, e.g. `google_pubsub_topic.ids.id`. */
  reference: string;
  /** Where it is used: file and JSON path. */
  where: string;
}

/** Every reference of the configuration, with where it is used. */
export function allReferences(config: TerraformConfig): Reference[] {
  const out: Reference[] = [];
  for (const file of config.files) {
    const iterators = dynamicIterators(file.json);
    for (const { path, value } of stringsIn(file.json)) {
      for (const expression of interpolations(value)) {
        for (const reference of referencesIn(expression, iterators)) out.push({ reference, where: `${file.name}: ${path}` });
      }
    }
  }
  return out;
}

/** The references to something the configuration does not declare. */
export function danglingReferences(config: TerraformConfig): Reference[] {
  return allReferences(config).filter(({ reference }) => {
    const [root, first, second] = reference.split('.');
    if (BUILT_IN_ROOTS.has(root)) return false;
    if (root === 'var') return !config.variables.has(first);
    if (root === 'local') return !config.locals.has(first);
    if (root === 'data') return !config.data.has(`${first}.${second}`);
    if (root === 'module') return true; // no module is declared
    return !config.resources.has(`${root}.${first}`);
  });
}

/** `${X}` -> X when the whole string is one interpolation, else undefined. */
export function soleExpression(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const match = /^\$\{([\s\S]*)\}$/.exec(value);
  return match && interpolations(value).length === 1 ? match[1].trim() : undefined;
}

// --- IAM -----------------------------------------------------------------------------------------

export const PUBLIC_PRINCIPALS = ['allUsers', 'allAuthenticatedUsers'];

/** Every string of the configuration (blocks and values, not comments) naming a public principal. */
export function publicPrincipals(config: TerraformConfig): { file: string; path: string; value: string }[] {
  const pattern = new RegExp(`\\b(${PUBLIC_PRINCIPALS.join('|')})\\b`);
  return config.files.flatMap((file) => stringsIn(file.json).filter(({ value }) => pattern.test(value)).map((hit) => ({ file: file.name, ...hit })));
}

/** Which attribute of each IAM member resource names what the grant is on. */
const GRANT_TARGETS: Record<string, { kind: string; attribute?: string }> = {
  google_project_iam_member: { kind: 'project' },
  google_storage_bucket_iam_member: { kind: 'bucket', attribute: 'bucket' },
  google_bigquery_dataset_iam_member: { kind: 'dataset', attribute: 'dataset_id' },
  google_bigquery_table_iam_member: { kind: 'table', attribute: 'table_id' },
  google_pubsub_topic_iam_member: { kind: 'topic', attribute: 'topic' },
  google_pubsub_subscription_iam_member: { kind: 'subscription', attribute: 'subscription' },
  google_cloud_run_v2_service_iam_member: { kind: 'service', attribute: 'name' },
  google_service_account_iam_member: { kind: 'serviceAccount', attribute: 'service_account_id' },
  google_artifact_registry_repository_iam_member: { kind: 'repository', attribute: 'repository' },
};

export interface Grant {
  address: string;
  role: string;
  /** The service account resource's name (`publish_ops`), or the member as written. */
  principal: string;
  /** `project`, or `<kind>:<resource name | var.x>`, e.g. `bucket:state`, `table:var.ussd_table`. */
  scope: string;
  condition?: string;
}

/**
 * What an attribute points at: the resource's name for `${type.name.attr}` (or
 * `${type.name[each.key].attr}`), `var.x` / `local.x` for those.
 */
export function targetName(value: unknown): string {
  const expression = soleExpression(value);
  const match = expression ? /^([A-Za-z_]\w*)\.([A-Za-z_]\w*)(?:\[[\w.]+\])?(?:\.[\w.[\]"]+)?$/.exec(expression) : null;
  if (!match) return String(value);
  return match[1] === 'var' || match[1] === 'local' ? `${match[1]}.${match[2]}` : match[2];
}

/** Every IAM grant of the configuration. Throws on an IAM resource type it does not know. */
export function grantsOf(config: TerraformConfig): Grant[] {
  const grants: Grant[] = [];
  for (const [address, body] of config.resources) {
    const type = address.slice(0, address.indexOf('.'));
    if (!/_iam_(member|binding|policy)$/.test(type)) continue;
    const target = GRANT_TARGETS[type];
    if (!target) throw new Error(`${address}: IAM resource type ${type} is not understood by the tests (authoritative bindings and policies are not used)`);
    const member = String(body.member);
    const account = /^serviceAccount:\$\{google_service_account\.(\w+)\.email\}$/.exec(member);
    const other = /^serviceAccount:\$\{(local\.\w+)\}$/.exec(member);
    grants.push({
      address,
      role: String(body.role),
      principal: account ? account[1] : other ? other[1] : member,
      scope: target.attribute ? `${target.kind}:${targetName(body[target.attribute])}` : target.kind,
      condition: block(body, 'condition')?.expression,
    });
  }
  return grants;
}

/** The comment lines directly above a declared block (`# ...`), joined; empty when there are none. */
export function commentAbove(config: TerraformConfig, address: string): string {
  const position = config.positions.get(address);
  if (!position) throw new Error(`no declaration of ${address}`);
  const lines = config.files.find((file) => file.name === position.file)!.text.split('\n');
  const comment: string[] = [];
  for (let i = position.line - 1; i >= 0 && lines[i].trim().startsWith('#'); i--) comment.unshift(lines[i].trim().replace(/^#\s?/, ''));
  return comment.join(' ');
}

// --- Values ----------------------------------------------------------------------------------------

/** A literal value, or the default of the variable it is exactly (`${var.x}`, `${tostring(var.x)}`). */
export function valueOf(config: TerraformConfig, value: unknown): unknown {
  const expression = soleExpression(value);
  if (expression === undefined) return value;
  const match = /^(?:tostring\()?var\.(\w+)\)?$/.exec(expression);
  return match ? config.variables.get(match[1])?.default : undefined;
}

/** The variable an expression is exactly (`${var.x}` or `${tostring(var.x)}`), if it is one. */
export function variableOf(value: unknown): string | undefined {
  const expression = soleExpression(value);
  const match = expression ? /^(?:tostring\()?var\.(\w+)\)?$/.exec(expression) : null;
  return match?.[1];
}

/**
 * A path written with `${path.module}` and `${local.x}` (locals that are such paths), as an
 * absolute path; undefined when it uses anything else.
 */
export function resolvePath(config: TerraformConfig, template: string): string | undefined {
  let text = template;
  for (let round = 0; round < 5 && /\$\{local\.\w+\}/.test(text); round++) {
    text = text.replace(/\$\{local\.(\w+)\}/g, (_, name: string) => {
      const value = config.locals.get(name);
      return typeof value === 'string' ? value : `\u0000`;
    });
  }
  text = text.replace(/\$\{path\.module\}/g, TERRAFORM_DIR);
  return text.includes('${') || text.includes('\u0000') ? undefined : join(text);
}

/** The path inside `${file("<path>")}`, resolved, or undefined. */
export function fileArgument(config: TerraformConfig, value: unknown): string | undefined {
  const expression = soleExpression(value);
  const match = expression ? /^file\("(.*)"\)$/.exec(expression) : null;
  return match ? resolvePath(config, match[1]) : undefined;
}

/** Turns a Terraform `fileset` pattern into a regular expression over slash-separated paths. */
export function filesetPattern(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*' && pattern[i + 1] === '*') {
      source += pattern[i + 2] === '/' ? '(?:.*/)?' : '.*';
      i += pattern[i + 2] === '/' ? 2 : 1;
    } else if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else source += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}
