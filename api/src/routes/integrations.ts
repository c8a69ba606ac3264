// /api/integrations: incoming provider webhooks (public, signed), and for the
// tenant's owners and admins the provider configuration, the events and
// their health. The webhook router reads the raw body itself and must be
// mounted before the JSON parser: the signature covers the bytes as sent.
import express, { Router, type Request, type Response } from 'express';
import { audited } from '../audit/audited.js';
import { tenantScope } from '../auth/context.js';
import { parse, problems } from '../http/problem.js';
import {
  getEvent,
  healthSchema,
  integrationEventPageSchema,
  integrationHealthSchema,
  listEvents,
  listEventsSchema,
  providerHealth,
  retryEvent,
} from '../integrations/integration-events.js';
import type { OrganizationMap } from '../integrations/organization-map.js';
import {
  providerConfigListSchema,
  providerParam,
  providerView,
  putProviderSchema,
  type ProviderConfigs,
} from '../integrations/provider-configs.js';
import type { WebhookIntake } from '../integrations/webhook-intake.js';
import type { TenantDatabases } from '../tenancy/tenant-databases.js';
import type { TenantDirectory } from '../tenancy/tenant-directory.js';
import { pageOf, reply } from '../http/responses.js';

export interface IntegrationDeps {
  directory: TenantDirectory;
  databases: TenantDatabases;
  integrations: {
    configs: ProviderConfigs;
    organizations: OrganizationMap;
    intake: WebhookIntake;
  };
  bodyLimitBytes: number;
}

const tenantPattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** POST /api/integrations/webhooks/{provider}[/{tenant}]; the prototype's trailing slashes work too. */
export function integrationWebhookRoutes(deps: IntegrationDeps): Router {
  const router = Router();
  const raw = express.raw({ type: () => true, limit: deps.bodyLimitBytes });
  const header = (req: Request, name: string) => req.get(name) ?? undefined;
  // Two routes rather than one with a path array, so each has its own pattern (metrics label, trace span name).
  const receive = async (req: Request, res: Response) => {
    const params = req.params as { provider?: string; tenant?: string };
    const provider = providerParam(params.provider);
    const tenant = params.tenant;
    if (tenant !== undefined && !tenantPattern.test(tenant)) throw problems.notFound('no such tenant');
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    if (body.length === 0) throw problems.badRequest('the request body is empty');
    const result = await deps.integrations.intake.receive({
      provider,
      tenant,
      headers: {
        id: header(req, 'webhook-id'),
        timestamp: header(req, 'webhook-timestamp'),
        signature: header(req, 'webhook-signature'),
      },
      body,
    });
    res.status(result.httpStatus).json(result.body);
  };
  router.post('/:provider', raw, receive);
  router.post('/:provider/:tenant', raw, receive);
  return router;
}

/** Provider configuration, events and health: owners and admins of the tenant. */
export function integrationRoutes(deps: IntegrationDeps): Router {
  const { directory, databases, integrations } = deps;
  const router = Router();
  const scopeOf = (res: Parameters<typeof tenantScope>[0]) => tenantScope(res, directory, databases, 'admin');

  router.get('/providers', async (_req, res) => {
    const scope = scopeOf(res);
    reply(res, 200, providerConfigListSchema, { results: await integrations.configs.list(scope.db) });
  });

  router.get('/providers/:provider', async (req, res) => {
    const scope = scopeOf(res);
    const row = await integrations.configs.get(scope.db, providerParam(req.params.provider));
    if (!row) throw problems.notFound('this provider is not configured');
    res.json(providerView(row));
  });

  router.put('/providers/:provider', async (req, res) => {
    const scope = scopeOf(res);
    const provider = providerParam(req.params.provider);
    const input = parse(putProviderSchema, req.body);
    if (await integrations.organizations.claimedByOther(provider, input.organization_id, scope.auth.tenant)) {
      throw problems.conflict(
        `another tenant already maps organization_id ${input.organization_id} for ${provider}`,
      );
    }
    const { created, view } = await audited(scope, req, res, async (transaction) => {
      const { before, after } = await integrations.configs.put(scope.db, provider, input, transaction);
      // The views hold no secret or credential, only when each last changed.
      const beforeView = before ? providerView(before) : undefined;
      const afterView = providerView(after);
      return {
        result: { created: before === undefined, view: afterView },
        audit: {
          action: before ? 'update' : 'create',
          resourceType: 'integration_provider',
          resourceId: provider,
          before: beforeView ?? null,
          after: afterView,
        },
      };
    });
    integrations.configs.forget(scope.auth.tenant, provider);
    integrations.organizations.remember(scope.auth.tenant, provider, view.organization_id);
    res.status(created ? 201 : 200).json(view);
  });

  router.get('/events', async (req, res) => {
    const scope = scopeOf(res);
    const query = parse(listEventsSchema, req.query);
    const { count, results } = await listEvents(scope.db, query);
    reply(res, 200, integrationEventPageSchema, pageOf(req, query.page, query.page_size, count, results));
  });

  router.get('/events/:id', async (req, res) => {
    const scope = scopeOf(res);
    res.json(await getEvent(scope.db, req.params.id));
  });

  router.post('/events/:id/retry', async (req, res) => {
    const scope = scopeOf(res);
    const after = await audited(scope, req, res, async (transaction) => {
      const changed = await retryEvent(scope.db, req.params.id, transaction);
      return {
        result: changed.after,
        audit: {
          action: 'retry',
          resourceType: 'integration_event',
          resourceId: changed.after.id,
          before: { status: changed.before.status, attempts: changed.before.attempts },
          after: { status: changed.after.status, attempts: changed.after.attempts },
        },
      };
    });
    res.status(202).json(after);
  });

  router.get('/health', async (req, res) => {
    const scope = scopeOf(res);
    const query = parse(healthSchema, req.query);
    reply(res, 200, integrationHealthSchema, {
      providers: await providerHealth(scope.db, query.window_minutes),
    });
  });
  return router;
}
