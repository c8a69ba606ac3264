// The platform admin's view of tenants: the Tenant resources themselves, read
// and written through the Kubernetes API, so provisioning stays the
// operator's job. Lists come from the tenant directory's watched copy.
import { z } from 'zod';
import { apiVersion, kind, planPolicies, plans, type Tenant } from '../../../lib/tenant/index.js';
import { problems } from '../http/problem.js';
import { encode, named, pageSchema, timestamp } from '../http/responses.js';
import { newTenantName } from '../signup/signups.js';
import { email } from '../users/users.js';
import type { TenantDirectory } from './tenant-directory.js';
import { kubeProblem, type TenantResources } from './tenant-resources.js';

const domain = z
  .string()
  .trim()
  .toLowerCase()
  .max(253)
  .regex(/^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$/, 'not a valid domain name');
const domains = z
  .array(domain)
  .max(20)
  .refine((list) => new Set(list).size === list.length, { message: 'lists a domain twice' });
const displayName = z.string().trim().min(1).max(100);
const rateLimit = z.number().int().min(1).max(1_000_000);

export const createTenantSchema = z.strictObject({
  name: newTenantName,
  display_name: displayName.optional(),
  plan: z.enum(plans),
  owner_email: email,
  domains: domains.optional(),
  suspended: z.boolean().optional(),
  self_registration: z.boolean().optional(),
  rate_limit_per_minute: rateLimit.optional(),
});

export const updateTenantSchema = z
  .strictObject({
    display_name: displayName.optional(),
    plan: z.enum(plans).optional(),
    suspended: z.boolean().optional(),
    domains: domains.optional(),
    self_registration: z.boolean().optional(),
    /** null returns to the plan's limit. */
    rate_limit_per_minute: rateLimit.nullable().optional(),
  })
  .refine((v) => Object.keys(v).length > 0, { message: 'send at least one field to change' });

export const listTenantsSchema = z.strictObject({
  page: z.coerce.number().int().min(1).default(1),
  page_size: z.coerce.number().int().min(1).max(100).default(20),
  plan: z.enum(plans).optional(),
  search: z.string().max(100).optional(),
});

export type CreateTenant = z.infer<typeof createTenantSchema>;
export type UpdateTenant = z.infer<typeof updateTenantSchema>;
export type ListTenants = z.infer<typeof listTenantsSchema>;

export const tenantSchema = named(
  'Tenant',
  z.object({
    name: z.string(),
    display_name: z.string(),
    plan: z.enum(plans),
    owner_email: z.string(),
    domains: z.array(z.string()),
    suspended: z.boolean(),
    self_registration: z.boolean(),
    rate_limit_per_minute: z.int().describe("The Tenant's own limit, or its plan's."),
    rate_limit_override: z
      .boolean()
      .describe('Whether the limit is the Tenant’s own rather than its plan’s.'),
    phase: z.string(),
    ready: z.boolean(),
    created_at: timestamp.nullable(),
  }),
  'A Tenant as the platform admin sees it.',
);

export const tenantPageSchema = pageSchema('TenantPage', tenantSchema);

export const currentTenantSchema = named(
  'CurrentTenant',
  z.object({
    name: z.string(),
    display_name: z.string(),
    plan: z.enum(plans),
    domains: z.array(z.string()),
    phase: z.string(),
    ready: z.boolean(),
    self_registration: z.boolean(),
    rate_limit_per_minute: z.int(),
  }),
  "The caller's own tenant.",
);

export const tenantDeletionSchema = named(
  'TenantDeletion',
  z.object({ name: z.string(), phase: z.literal('Deleting') }),
);

export type TenantView = z.output<typeof tenantSchema>;

export function tenantView(tenant: Tenant): TenantView {
  const { spec, status, metadata } = tenant;
  const ready = status?.conditions?.find((c) => c.type === 'Ready');
  return encode(tenantSchema, {
    name: metadata.name,
    display_name: spec.displayName ?? metadata.name,
    plan: spec.plan,
    owner_email: spec.owner.email,
    domains: spec.domains ?? [],
    suspended: spec.suspended ?? false,
    self_registration: spec.selfRegistration ?? false,
    rate_limit_per_minute: spec.rateLimit?.requestsPerMinute ?? planPolicies[spec.plan].requestsPerMinute,
    rate_limit_override: spec.rateLimit?.requestsPerMinute !== undefined,
    phase: metadata.deletionTimestamp ? 'Deleting' : (status?.phase ?? 'Pending'),
    ready: ready?.status === 'True' && status?.observedGeneration === metadata.generation,
    created_at: metadata.creationTimestamp ?? null,
  });
}

/** Kubernetes answers that are the caller's fault become problems; the rest propagate. */
async function kube<T>(name: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw kubeProblem(error, name) ?? error;
  }
}

export class TenantAdmin {
  constructor(
    private readonly resources: TenantResources,
    private readonly directory: TenantDirectory,
  ) {}

  list(query: ListTenants): { count: number; results: TenantView[] } {
    const search = query.search?.toLowerCase();
    const matching = this.directory
      .list()
      .map((entry) => entry.tenant)
      .filter((t) => !query.plan || t.spec.plan === query.plan)
      .filter(
        (t) =>
          !search ||
          t.metadata.name.includes(search) ||
          (t.spec.displayName ?? '').toLowerCase().includes(search),
      )
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const start = (query.page - 1) * query.page_size;
    return {
      count: matching.length,
      results: matching.slice(start, start + query.page_size).map(tenantView),
    };
  }

  async get(name: string): Promise<TenantView> {
    const tenant = await kube(name, () => this.resources.get(name));
    if (!tenant) throw problems.notFound(`tenant ${name} does not exist`);
    return tenantView(tenant);
  }

  async create(input: CreateTenant): Promise<TenantView> {
    this.directory.assertNotRetained(input.name);
    const tenant: Tenant = {
      apiVersion,
      kind,
      metadata: { name: input.name },
      spec: {
        plan: input.plan,
        owner: { email: input.owner_email },
        ...(input.display_name === undefined ? {} : { displayName: input.display_name }),
        ...(input.domains === undefined ? {} : { domains: input.domains }),
        ...(input.suspended === undefined ? {} : { suspended: input.suspended }),
        ...(input.self_registration === undefined ? {} : { selfRegistration: input.self_registration }),
        ...(input.rate_limit_per_minute === undefined
          ? {}
          : { rateLimit: { requestsPerMinute: input.rate_limit_per_minute } }),
      },
    };
    return tenantView(await kube(input.name, () => this.resources.create(tenant)));
  }

  async update(name: string, input: UpdateTenant): Promise<TenantView> {
    const spec: Record<string, unknown> = {};
    if (input.display_name !== undefined) spec.displayName = input.display_name;
    if (input.plan !== undefined) spec.plan = input.plan;
    if (input.suspended !== undefined) spec.suspended = input.suspended;
    if (input.domains !== undefined) spec.domains = input.domains;
    // Compared with undefined, not truthiness: false is a change too (turning self-registration off).
    if (input.self_registration !== undefined) spec.selfRegistration = input.self_registration;
    if (input.rate_limit_per_minute !== undefined)
      spec.rateLimit =
        input.rate_limit_per_minute === null ? null : { requestsPerMinute: input.rate_limit_per_minute };
    // A merge patch: fields not sent stay as they are, null removes the override. A missing Tenant is a 404.
    return tenantView(await kube(name, () => this.resources.mergePatch(name, { spec })));
  }

  async delete(name: string): Promise<void> {
    await kube(name, () => this.resources.delete(name));
  }
}
