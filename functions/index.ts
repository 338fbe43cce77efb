/**
 * Deployed entry point (package.json `main`): the Functions Framework loads this module, which
 * reads the configuration once, builds the Google Cloud adapters and registers the functions.
 * The local stack (`consolidate run`) registers the same handlers with local adapters instead.
 */
import * as functions from '@google-cloud/functions-framework';
import { loadConfig } from '../shared/config';
import { composeAudit, composeGoogleCloud } from '../shared/gcp/compose';
import { stdoutLogger } from '../shared/logger';
import { buildHandlers } from './handlers';
import { makeAuditConsolidation } from './audit-function';
import { AUDIT_FUNCTION_NAME, registerFunctions } from './registry';

const config = loadConfig(process.env);
if (config.backend !== 'gcp') {
  throw new Error('CONSOLIDATION_BACKEND=local: the local chain runs through `npx consolidate run`, which starts all four functions on the local stack. Set CONSOLIDATION_BACKEND=gcp to serve them on Google Cloud.');
}
const logger = stdoutLogger(config.logLevel);
const chain = composeGoogleCloud(config, logger);
registerFunctions(buildHandlers(chain));
functions.http(AUDIT_FUNCTION_NAME, makeAuditConsolidation(composeAudit(chain)));
