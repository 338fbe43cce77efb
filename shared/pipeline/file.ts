import { join } from 'node:path';

/** The repository's pipeline file, from the source tree or the compiled package alike. */
export function pipelineFilePath(): string {
  const here = __dirname;
  return here.includes(join('dist', 'shared')) ? join(here, '..', '..', '..', 'shared', 'pipeline', 'consolidation.yaml') : join(here, 'consolidation.yaml');
}
