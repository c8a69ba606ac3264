// /api/webhooks: the tenant's outgoing webhook endpoints, messages and attempts.
// Owners and admins only; webhooks/endpoint-service.ts has the rules. A secret
// travels only in the answers to create and rotate-secret, marked no-store.
import { Router, type Response } from 'express';
import { audited } from '../audit/audited.js';
import { tenantScope } from '../auth/context.js';
import { parse } from '../http/problem.js';
import type { TenantDatabases } from '../tenancy/tenant-databases.js';
import type { TenantDirectory } from '../tenancy/tenant-directory.js';
import {
  createEndpoint,
  deleteEndpoint,
  getEndpoint,
  getMessage,
  listAttempts,
  listEndpoints,
  listMessages,
  replayEndpoint,
  rotateSecret,
  sendTestMessage,
  updateEndpoint,
  type WebhookSettings,
} from '../webhooks/endpoint-service.js';
import {
  attemptPageSchema,
  createEndpointSchema,
  endpointPageSchema,
  endpointWithSecretSchema,
  listAttemptsSchema,
  listEndpointsSchema,
  listMessagesSchema,
  messagePageSchema,
  replayResultSchema,
  replaySchema,
  rotateSecretSchema,
  testMessageSchema,
  updateEndpointSchema,
} from '../webhooks/schemas.js';
import { encode, pageOf, reply } from '../http/responses.js';

export function webhookRoutes(deps: {
  directory: TenantDirectory;
  databases: TenantDatabases;
  webhooks: WebhookSettings;
}): Router {
  const { directory, databases, webhooks: settings } = deps;
  const router = Router();
  const scopeOf = (res: Response) => tenantScope(res, directory, databases, 'admin');

  router.get('/endpoints', async (req, res) => {
    const scope = scopeOf(res);
    const query = parse(listEndpointsSchema, req.query);
    const { count, results } = await listEndpoints(scope, query);
    reply(res, 200, endpointPageSchema, pageOf(req, query.page, query.page_size, count, results));
  });

  router.post('/endpoints', async (req, res) => {
    const scope = scopeOf(res);
    const input = parse(createEndpointSchema, req.body);
    const { endpoint, secret } = await audited(scope, req, res, async (transaction) => {
      const created = await createEndpoint(scope, input, settings, transaction);
      return {
        result: created,
        audit: {
          action: 'create',
          resourceType: 'webhook_endpoint',
          resourceId: created.endpoint.id,
          after: created.endpoint,
        },
      };
    });
    res
      .status(201)
      .set('Cache-Control', 'no-store')
      .location(`/api/webhooks/endpoints/${endpoint.id}`)
      .json(encode(endpointWithSecretSchema, { ...endpoint, secret }));
  });

  router.get('/endpoints/:id', async (req, res) => {
    res.json(await getEndpoint(scopeOf(res), req.params.id));
  });

  router.patch('/endpoints/:id', async (req, res) => {
    const scope = scopeOf(res);
    const input = parse(updateEndpointSchema, req.body);
    const after = await audited(scope, req, res, async (transaction) => {
      const change = await updateEndpoint(scope, req.params.id, input, settings, transaction);
      return {
        result: change.after,
        audit: {
          action: 'update',
          resourceType: 'webhook_endpoint',
          resourceId: change.after.id,
          before: change.before,
          after: change.after,
        },
      };
    });
    res.json(after);
  });

  router.delete('/endpoints/:id', async (req, res) => {
    const scope = scopeOf(res);
    await audited(scope, req, res, async (transaction) => {
      const before = await deleteEndpoint(scope, req.params.id, transaction);
      return {
        result: undefined,
        audit: { action: 'delete', resourceType: 'webhook_endpoint', resourceId: before.id, before },
      };
    });
    res.status(204).end();
  });

  router.post('/endpoints/:id/rotate-secret', async (req, res) => {
    const scope = scopeOf(res);
    const { overlap_seconds } = parse(rotateSecretSchema, req.body);
    const { after, secret } = await audited(scope, req, res, async (transaction) => {
      const rotated = await rotateSecret(scope, req.params.id, overlap_seconds, transaction);
      return {
        result: rotated,
        // The views carry no secret; the audit shows that the overlap changed.
        audit: {
          action: 'rotate_secret',
          resourceType: 'webhook_endpoint',
          resourceId: rotated.after.id,
          before: rotated.before,
          after: rotated.after,
        },
      };
    });
    res.set('Cache-Control', 'no-store');
    reply(res, 200, endpointWithSecretSchema, { ...after, secret });
  });

  router.post('/endpoints/:id/test', async (req, res) => {
    const scope = scopeOf(res);
    const sent = await audited(scope, req, res, async (transaction) => {
      const result = await sendTestMessage(scope, req.params.id, transaction);
      return {
        result,
        audit: {
          action: 'test',
          resourceType: 'webhook_endpoint',
          resourceId: req.params.id,
          after: result,
        },
      };
    });
    res.location(`/api/webhooks/messages/${sent.message_id}`);
    reply(res, 202, testMessageSchema, sent);
  });

  router.post('/endpoints/:id/replay', async (req, res) => {
    const scope = scopeOf(res);
    const { since } = parse(replaySchema, req.query);
    const replayed = await audited(scope, req, res, async (transaction) => {
      const result = await replayEndpoint(scope, req.params.id, since, settings.replayLimit, transaction);
      return {
        result,
        audit: {
          action: 'replay',
          resourceType: 'webhook_endpoint',
          resourceId: req.params.id,
          after: { since: since.toISOString(), ...result },
        },
      };
    });
    reply(res, 202, replayResultSchema, {
      since: since.toISOString(),
      limit: settings.replayLimit,
      ...replayed,
    });
  });

  router.get('/messages', async (req, res) => {
    const scope = scopeOf(res);
    const query = parse(listMessagesSchema, req.query);
    const { count, results } = await listMessages(scope, query);
    reply(res, 200, messagePageSchema, pageOf(req, query.page, query.page_size, count, results));
  });

  router.get('/messages/:id', async (req, res) => {
    res.json(await getMessage(scopeOf(res), req.params.id));
  });

  router.get('/messages/:id/attempts', async (req, res) => {
    const scope = scopeOf(res);
    const query = parse(listAttemptsSchema, req.query);
    const { count, results } = await listAttempts(scope, req.params.id, query);
    reply(res, 200, attemptPageSchema, pageOf(req, query.page, query.page_size, count, results));
  });
  return router;
}
