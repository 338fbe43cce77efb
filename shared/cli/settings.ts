import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ConfigError, loadConfig, VARIABLES, type Config } from '../config';

/**
 * Where the operator's commands get their configuration: the flags, then the environment, then a
 * profile of the configuration file, then the defaults. A profile holds the same variables as the
 * environment (the README's table), so a deployment's project and bucket are written once.
 */

/** Variables only the command-line tool reads (beside the chain's configuration). */
export const TOOL_VARIABLES = {
  PUBLISH_OPS_URL: 'URL of the deployed publishOps (Google Cloud replays); default https://<REGION>-<GCP_PROJECT>.cloudfunctions.net/publishOps',
  MAX_AHEAD: 'How far beyond the real clock a run may move the watermark without --force (default 1h)',
} as const;

export interface ConnectionFlags {
  backend?: 'local' | 'gcp';
  profile?: string;
  config?: string;
  stateDir?: string;
  warehouse?: string;
  project?: string;
  bucket?: string;
  region?: string;
  verbose?: boolean;
}

export interface Settings {
  config: Config;
  /** The tool's own variables (TOOL_VARIABLES), as resolved. */
  tool: Partial<Record<keyof typeof TOOL_VARIABLES, string>>;
  /** Where the profile came from, when one was used. */
  profile?: { file: string; name: string };
}

/** The configuration file: --config, $CONSOLIDATE_CONFIG, or config.yaml under $XDG_CONFIG_HOME/consolidate (~/.config/consolidate). */
export function configFile(flags: ConnectionFlags, env: NodeJS.ProcessEnv): { file: string; explicit: boolean } {
  if (flags.config) return { file: flags.config, explicit: true };
  if (env.CONSOLIDATE_CONFIG) return { file: env.CONSOLIDATE_CONFIG, explicit: true };
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return { file: join(base, 'consolidate', 'config.yaml'), explicit: false };
}

const fileSchemaHelp = 'expected `default: NAME` and `profiles: { NAME: { VARIABLE: value, ... } }`';

/** Reads the profile named by --profile, $CONSOLIDATE_PROFILE or the file's `default`; none when there is no file and none was asked for. */
function readProfile(flags: ConnectionFlags, env: NodeJS.ProcessEnv): { values: Record<string, string>; file: string; name: string } | undefined {
  const { file, explicit } = configFile(flags, env);
  const wanted = flags.profile ?? env.CONSOLIDATE_PROFILE;
  if (!existsSync(file)) {
    if (explicit || wanted) throw new ConfigError([{ variable: 'CONSOLIDATE_CONFIG', problem: `(${file}) does not exist${wanted ? `, so profile "${wanted}" cannot be read` : ''}` }]);
    return undefined;
  }
  let document: unknown;
  try {
    document = parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new ConfigError([{ variable: 'CONSOLIDATE_CONFIG', problem: `(${file}) is not valid YAML: ${(error as Error).message.split('\n')[0]}` }]);
  }
  const doc = (document ?? {}) as { default?: unknown; profiles?: Record<string, unknown> };
  if (typeof doc !== 'object' || (doc.profiles !== undefined && typeof doc.profiles !== 'object')) {
    throw new ConfigError([{ variable: 'CONSOLIDATE_CONFIG', problem: `(${file}) ${fileSchemaHelp}` }]);
  }
  const name = wanted ?? (typeof doc.default === 'string' ? doc.default : undefined);
  if (!name) return undefined;
  const profile = doc.profiles?.[name];
  if (!profile || typeof profile !== 'object') {
    throw new ConfigError([{ variable: 'CONSOLIDATE_PROFILE', problem: `(${name}) is not a profile of ${file}; it has ${Object.keys(doc.profiles ?? {}).join(', ') || 'none'}` }]);
  }
  const known = new Set([...Object.keys(VARIABLES), ...Object.keys(TOOL_VARIABLES)]);
  const unknown = Object.keys(profile).filter((key) => !known.has(key));
  if (unknown.length > 0) throw new ConfigError(unknown.map((key) => ({ variable: key, problem: `in profile "${name}" of ${file} is not a configuration variable` })));
  const values = Object.fromEntries(Object.entries(profile).map(([k, v]) => [k, String(v)]));
  return { values, file, name };
}

/** The validated configuration for one command; throws ConfigError naming every bad variable. */
export function resolveSettings(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env): Settings {
  const profile = readProfile(flags, env);
  const merged: Record<string, string | undefined> = { ...profile?.values };
  for (const [key, value] of Object.entries(env)) if (value !== undefined && value !== '') merged[key] = value;
  const fromFlags: Record<string, string | undefined> = {
    CONSOLIDATION_BACKEND: flags.backend,
    STATE_DIR: flags.stateDir,
    WAREHOUSE_FILE: flags.warehouse,
    GCP_PROJECT: flags.project,
    STATE_BUCKET: flags.bucket,
    REGION: flags.region,
  };
  for (const [key, value] of Object.entries(fromFlags)) if (value !== undefined) merged[key] = value;
  const tool = Object.fromEntries(Object.keys(TOOL_VARIABLES).filter((k) => merged[k]).map((k) => [k, merged[k]]));
  return { config: loadConfig(merged), tool, profile: profile && { file: profile.file, name: profile.name } };
}
