import type { CloudEvent, Request, Response } from '@google-cloud/functions-framework';
import { makeCollectIds } from './collect-ids';
import type { ChainDependencies } from './dependencies';
import { makeLaunchDataflow } from './launch-dataflow';
import { makeMergeOnComplete } from './merge-on-complete';
import { makePublishOps } from './publish-ops';

export interface ChainHandlers {
  publishOps: (req: Request, res: Response) => Promise<void>;
  collectIds: (event: CloudEvent<unknown>) => Promise<void>;
  launchDataflow: (event: CloudEvent<unknown>) => Promise<void>;
  mergeOnComplete: (event: CloudEvent<unknown>) => Promise<void>;
}

/** The four functions, built from one set of adapters. */
export function buildHandlers(deps: ChainDependencies): ChainHandlers {
  return {
    publishOps: makePublishOps(deps),
    collectIds: makeCollectIds(deps),
    launchDataflow: makeLaunchDataflow(deps),
    mergeOnComplete: makeMergeOnComplete(deps),
  };
}
