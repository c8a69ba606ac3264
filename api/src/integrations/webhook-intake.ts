// Incoming provider webhooks: find the tenant (from the path, or from the
// payload's organization_id), verify the Standard Webhooks signature on the
// raw body, validate each event, and store every new event together with its
// outbox row (integration-event-intake.ts: one statement, shared with concurrent
// requests for the same tenant). Duplicates (same provider and event_id, or
// webhook-id when the event has none) insert nothing and report "duplicate".
import {
  eventTypes,
  integrationEventSchema,
  type IntegrationEventBody,
  type Provider,
} from '../../../lib/integrations/catalog.js';
import { verifyWebhook, WebhookVerificationError } from '../../../lib/webhooks/verification.js';
import { z } from 'zod';
import { fieldErrors, problems, ProblemError, type FieldError } from '../http/problem.js';
import { encode, fieldErrorSchema, named } from '../http/responses.js';
import type { TenantDatabases } from '../tenancy/tenant-databases.js';
import type { TenantDirectory } from '../tenancy/tenant-directory.js';
import type { IntegrationEventIntake, NewEvent } from './integration-event-intake.js';
import type { OrganizationMap } from './organization-map.js';
import type { ProviderConfigs } from './provider-configs.js';

export const maxBatchSize = 100;
/** Deepest nesting of objects and arrays in an event; PostgreSQL and JSON.stringify recurse. */
export const maxEventDepth = 32;
/** Longest event_id (the column's CHECK), also when webhook-id stands in for it. */
const idLimit = 200;

export interface IntakeRequest {
  provider: Provider;
  /** From the path, when the provider posts to /webhooks/{provider}/{tenant}. */
  tenant: string | undefined;
  headers: { id: string | undefined; timestamp: string | undefined; signature: string | undefined };
  body: Buffer;
}

export type EventResult =
  | { index: number; event_id: string; status: 'accepted'; id: string }
  | { index: number; event_id: string; status: 'duplicate' }
  | { index: number; event_id: string | null; status: 'rejected'; errors: FieldError[] };

const eventResultSchema = z.discriminatedUnion('status', [
  z.object({ index: z.int().min(0), event_id: z.string(), status: z.literal('accepted'), id: z.uuid() }),
  z.object({ index: z.int().min(0), event_id: z.string(), status: z.literal('duplicate') }),
  z.object({
    index: z.int().min(0),
    event_id: z.string().nullable(),
    status: z.literal('rejected'),
    errors: z.array(fieldErrorSchema),
  }),
]);

/** The answer to one event (not a batch): accepted, or a duplicate of one accepted before. */
export const intakeEventResultSchema = named(
  'IntakeEventResult',
  z.discriminatedUnion('status', [
    z.object({ tenant: z.string(), event_id: z.string(), status: z.literal('accepted'), id: z.uuid() }),
    z.object({ tenant: z.string(), event_id: z.string(), status: z.literal('duplicate') }),
  ]),
);

export const intakeBatchResultSchema = named(
  'IntakeBatchResult',
  z.object({
    tenant: z.string(),
    accepted: z.int().min(0),
    duplicates: z.int().min(0),
    rejected: z.int().min(0),
    results: z.array(eventResultSchema),
  }),
  'Per event of a batch; 202 when any was accepted, 200 when none but duplicates, 400 when all were rejected.',
);

export const intakeResultSchema = named(
  'IntakeResult',
  z.union([intakeEventResultSchema, intakeBatchResultSchema]),
);

export interface IntakeResponse {
  httpStatus: 200 | 202 | 400;
  body: z.output<typeof intakeResultSchema>;
}

const unauthorized = (detail: string) =>
  new ProblemError(401, 'Unauthorized', detail, {
    headers: { 'WWW-Authenticate': 'Standard-Webhooks' },
  });

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw problems.badRequest('the request body is not valid JSON');
  }
}

/** The events in a body: one event, or `{"events": [...]}`. */
function eventsOf(parsed: unknown): { batch: boolean; events: unknown[] } {
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw problems.validation([{ field: 'body', message: 'expected an event object or {"events": [...]}' }]);
  const events = (parsed as { events?: unknown }).events;
  if (events === undefined) return { batch: false, events: [parsed] };
  if (!Array.isArray(events) || events.length === 0 || events.length > maxBatchSize)
    throw problems.validation([
      { field: 'events', message: `expected an array of 1 to ${maxBatchSize} events` },
    ]);
  return { batch: true, events };
}

interface ValidEvent {
  index: number;
  eventId: string;
  event: IntegrationEventBody;
}

export class WebhookIntake {
  constructor(
    private readonly directory: TenantDirectory,
    private readonly databases: TenantDatabases,
    private readonly configs: ProviderConfigs,
    private readonly organizations: OrganizationMap,
    private readonly events: IntegrationEventIntake,
    private readonly toleranceSeconds = 300,
  ) {}

  async receive(request: IntakeRequest): Promise<IntakeResponse> {
    const { provider } = request;
    let parsed: unknown;
    let tenant = request.tenant;
    if (tenant === undefined) {
      // Without a tenant in the path the body must be read to route it; nothing
      // in it is trusted until the signature of the tenant it names is checked.
      parsed = parseJson(request.body);
      const organizationId = organizationOf(parsed);
      const found = await this.organizations.resolve(provider, organizationId);
      if (!found) throw unauthorized(`no tenant has ${provider} configured for this organization_id`);
      if ('ambiguous' in found)
        throw problems.conflict(
          `several tenants map this organization_id for ${provider}; post to /api/integrations/webhooks/${provider}/<tenant>`,
        );
      tenant = found.tenant;
    }
    const entry = this.directory.servable(tenant);
    const db = this.databases.for(tenant, entry.credentials);
    const config = await this.configs.forVerification(db, provider);
    if (!config || !config.enabled) throw unauthorized(`${provider} is not configured for this tenant`);
    try {
      verifyWebhook(config.secrets, request.headers, request.body, {
        toleranceSeconds: this.toleranceSeconds,
      });
    } catch (error) {
      if (error instanceof WebhookVerificationError) throw unauthorized(error.message);
      throw error;
    }
    parsed ??= parseJson(request.body);
    const { batch, events } = eventsOf(parsed);

    const results: EventResult[] = [];
    const valid: ValidEvent[] = [];
    events.forEach((raw, index) => {
      const fallbackId = batch ? `${request.headers.id}:${index}` : request.headers.id!;
      const checked = validateEvent(provider, raw, config.organizationId, fallbackId);
      if ('errors' in checked) {
        const eventId = (raw as { event_id?: unknown } | null)?.event_id;
        results.push({
          index,
          event_id: typeof eventId === 'string' ? eventId : null,
          status: 'rejected',
          errors: checked.errors.map((e) => ({
            ...e,
            field: batch ? `events.${index}.${e.field}` : e.field,
          })),
        });
      } else {
        valid.push({ index, eventId: checked.eventId, event: checked.event });
      }
    });
    if (!batch && results.length > 0) {
      const rejected = results[0] as Extract<EventResult, { status: 'rejected' }>;
      throw problems.validation(rejected.errors);
    }
    const ids = await this.events.store(
      db,
      valid.map((v) => newEvent(provider, v)),
    );
    valid.forEach((v, i) => {
      const id = ids[i];
      results.push(
        id === undefined
          ? { index: v.index, event_id: v.eventId, status: 'duplicate' }
          : { index: v.index, event_id: v.eventId, status: 'accepted', id },
      );
    });
    results.sort((a, b) => a.index - b.index);
    const count = (status: EventResult['status']) => results.filter((r) => r.status === status).length;
    const accepted = count('accepted');
    const duplicates = count('duplicate');
    const httpStatus = accepted > 0 ? 202 : duplicates > 0 ? 200 : 400;
    if (!batch) {
      const only = results[0]!;
      // A lone rejected event was answered with a problem above.
      if (only.status === 'rejected') throw new Error('a rejected single event reached the answer');
      const { index: _index, ...result } = only;
      return { httpStatus, body: encode(intakeEventResultSchema, { tenant, ...result }) };
    }
    return {
      httpStatus,
      body: encode(intakeBatchResultSchema, {
        tenant,
        accepted,
        duplicates,
        rejected: count('rejected'),
        results,
      }),
    };
  }
}

function organizationOf(parsed: unknown): string {
  const { events } = eventsOf(parsed);
  const ids = new Set(
    events
      .map((e) => (e as { organization_id?: unknown } | null)?.organization_id)
      .filter((v) => v !== undefined),
  );
  const [only] = ids;
  if (ids.size !== 1 || typeof only !== 'string' || only.length === 0) {
    throw problems.validation([
      {
        field: 'organization_id',
        message: 'required (one value for every event) when the path names no tenant',
      },
    ]);
  }
  return only;
}

function validateEvent(
  provider: Provider,
  raw: unknown,
  organizationId: string,
  fallbackId: string,
): { event: IntegrationEventBody; eventId: string } | { errors: FieldError[] } {
  const result = integrationEventSchema.safeParse(raw);
  if (!result.success) return { errors: fieldErrors(result.error) };
  const event = result.data;
  // Checked before the insert: a value the database refuses would fail every request sharing its statement.
  const unstorable = unstorableValue(event);
  if (unstorable) return { errors: [unstorable] };
  const idField = eventTypes[provider][event.event_type];
  if (idField === undefined) {
    return {
      errors: [
        {
          field: 'event_type',
          message: `unknown event type for ${provider}; one of ${Object.keys(eventTypes[provider]).join(', ')}`,
        },
      ],
    };
  }
  const id = event.data[idField];
  if (typeof id !== 'string' || id.length === 0 || id.length > idLimit) {
    return {
      errors: [{ field: `data.${idField}`, message: `required: a string of 1 to ${idLimit} characters` }],
    };
  }
  const eventId = event.event_id ?? fallbackId;
  if (eventId.length > idLimit) {
    return {
      errors: [{ field: 'event_id', message: `required when webhook-id is too long to stand in for it` }],
    };
  }
  if (event.organization_id !== undefined && event.organization_id !== organizationId) {
    return {
      errors: [
        { field: 'organization_id', message: 'does not match the organization configured for this tenant' },
      ],
    };
  }
  return { event, eventId };
}

// NUL and unpaired surrogates: jsonb and text refuse them.
const unstorableText = /[\0\p{Cs}]/u;

/** The first part of a value PostgreSQL cannot store as jsonb, or that nests deeper than maxEventDepth. */
function unstorableValue(value: unknown, path: string[] = []): FieldError | undefined {
  const at = (message: string) => ({ field: path.join('.') || 'body', message });
  if (typeof value === 'string') {
    return unstorableText.test(value)
      ? at('contains NUL or an unpaired surrogate, which cannot be stored')
      : undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  if (path.length >= maxEventDepth) return at(`nested deeper than ${maxEventDepth} levels`);
  for (const [key, item] of Object.entries(value)) {
    if (unstorableText.test(key)) {
      return at('has a key with NUL or an unpaired surrogate, which cannot be stored');
    }
    const found = unstorableValue(item, [...path, key]);
    if (found) return found;
  }
  return undefined;
}

function newEvent(provider: Provider, v: ValidEvent): NewEvent {
  return {
    provider,
    eventId: v.eventId,
    eventType: v.event.event_type,
    organizationId: v.event.organization_id ?? null,
    payload: JSON.stringify(v.event),
  };
}
