import type { Request, Response } from '@google-cloud/functions-framework';
import { z } from 'zod';
import { BadRequestError, ChainError, errorMessage } from '../shared/errors';
import { describeIssues } from '../shared/events';
import { runAudit, type AuditDependencies } from './audit';

const body = z.object({ from: z.string().optional(), to: z.string().optional(), repair: z.boolean().optional() }).strict();

/** Differences listed in the HTTP answer (all of them are in the log and the audit table's samples). */
const LISTED = 100;

/**
 * auditConsolidation: the audit as an HTTP function, called daily by Cloud Scheduler. The body
 * is empty (the AUDIT_DAYS days ending on the watermark's, repair as AUDIT_REPAIR says) or
 * `{"from", "to", "repair"}`. It answers 200 with the report whatever the audit found (the log
 * says ERROR when differences are left, for an alert), 400 for a bad body, 500 when it could not
 * audit.
 */
export function makeAuditConsolidation(deps: AuditDependencies): (req: Request, res: Response) => Promise<void> {
  return async (req, res) => {
    if (req.method !== 'POST') {
      res.set('Allow', 'POST').status(405).json({ error: `Method ${req.method} not allowed: auditConsolidation takes POST` });
      return;
    }
    try {
      const raw = req.body === undefined || req.body === '' || (Buffer.isBuffer(req.body) && req.body.length === 0) ? {} : req.body;
      const parsed = body.safeParse(raw);
      if (!parsed.success) throw new BadRequestError(`Bad audit body: ${describeIssues(parsed.error.issues)}; it takes {"from": "YYYY-MM-DD", "to": "YYYY-MM-DD", "repair": true|false}, all optional`);
      const report = await runAudit(deps, { from: parsed.data.from, to: parsed.data.to, repair: parsed.data.repair ?? deps.config.auditRepair });
      const counted = report.differences.filter((x) => x.hold !== 'pending');
      res.status(200).json({ ...report, differences: counted.slice(0, LISTED), differencesListed: Math.min(LISTED, counted.length), differencesFound: counted.length });
    } catch (error) {
      const status = error instanceof BadRequestError ? 400 : 500;
      const context = error instanceof ChainError ? error.context : {};
      deps.logger.log(status === 400 ? 'WARNING' : 'ERROR', `auditConsolidation ${status === 400 ? 'refused the request' : 'failed'}: ${errorMessage(error)}`, { error, ...context });
      res.status(status).json({ error: errorMessage(error), ...context });
    }
  };
}
