/**
 * Deployed entry point (package.json `main`): the Functions Framework loads this module, which
 * reads the configuration once, builds the Google Cloud adapters and registers the functions.
 * The local stack (`consolidate run`) registers the same handlers with local adapters instead.
 */
import { loadConfig } from '../shared/config';
import { composeGoogleCloud } from '../shared/gcp/compose';
import { stdoutLogger } from '../shared/logger';
import { buildHandlers } from './handlers';
import { registerFunctions } from './registry';

const config = loadConfig(process.env);
if (config.backend !== 'gcp') {
  throw new Error('CONSOLIDATION_BACKEND=local: the local chain runs through `npx consolidate run`, which starts all four functions on the local stack. Set CONSOLIDATION_BACKEND=gcp to serve them on Google Cloud.');
}
registerFunctions(buildHandlers(composeGoogleCloud(config, stdoutLogger(config.logLevel))));
