// Runs a change and its audit entry in one transaction, so a change is never
// stored without its record (nor a record without its change).
import type { Request, Response } from 'express';
import type { Transaction } from 'sequelize';
import type { TenantScope } from '../auth/context.js';
import { AuditLog, type AuditEntry } from './audit-log.js';

export type AuditFields = Omit<AuditEntry, 'actor' | 'ip' | 'requestId'>;

export async function audited<T>(
  scope: TenantScope,
  req: Request,
  res: Response,
  change: (transaction: Transaction) => Promise<{ result: T; audit: AuditFields }>,
): Promise<T> {
  return scope.db.sequelize.transaction(async (transaction) => {
    const { result, audit } = await change(transaction);
    await AuditLog.append(
      scope.db.sequelize,
      {
        ...audit,
        actor: scope.auth.userId,
        ip: req.ip ?? null,
        requestId: String(res.locals.requestId ?? '') || null,
      },
      { transaction },
    );
    return result;
  });
}
