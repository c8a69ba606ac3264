// Self-service signup: a new tenant and its first owner. Signup writes the
// Tenant resource and keeps the owner pending (argon2id hash, never the
// password) until the operator has made the tenant Ready; the owner
// provisioner then creates the user. The status says `ready` only once the
// owner can log in.
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Logger } from '../../../lib/logger.js';
import { apiVersion, kind, type Plan, type Tenant } from '../../../lib/tenant/index.js';
import { passwordHashing } from '../auth/password-hashing.js';
import { passwordProblems } from '../auth/passwords.js';
import { tenantName } from '../auth/sessions.js';
import { problems } from '../http/problem.js';
import { named } from '../http/responses.js';
import type { TenantDirectory } from '../tenancy/tenant-directory.js';
import {
  kubeErrorCode,
  kubeProblem,
  signupAnnotation,
  type TenantResources,
} from '../tenancy/tenant-resources.js';
import { email } from '../users/users.js';
import type { OwnerProvisioner } from './owner-provisioning.js';
import type { PendingOwner, PendingOwners } from './pending-owners.js';

/** Names that would shadow a route (`/api/tenants/current`) or read as the platform's own. */
export const reservedTenantNames = new Set([
  'current',
  'admin',
  'api',
  'platform',
  'system',
  'tenantry',
  'www',
]);

export const newTenantName = tenantName.refine((name) => !reservedTenantNames.has(name), {
  message: 'is reserved',
});

export const signupSchema = z.strictObject({
  tenant: newTenantName,
  display_name: z.string().trim().min(1).max(100),
  email,
  password: z.string().max(256),
  first_name: z.string().trim().max(150).optional(),
  last_name: z.string().trim().max(150).optional(),
});

export type SignupInput = z.infer<typeof signupSchema>;

export const signupAcceptedSchema = named(
  'SignupAccepted',
  z.object({ tenant: z.string(), status_url: z.url().describe('Poll it until `ready`.') }),
  'The Tenant is being provisioned.',
);

export const signupStatusSchema = named(
  'SignupStatus',
  z.object({
    tenant: z.string(),
    phase: z.string(),
    ready: z.boolean().describe('Whether the owner exists and can sign in.'),
  }),
);

export type SignupStatus = z.output<typeof signupStatusSchema>;

export interface SignupsOptions {
  resources: TenantResources;
  directory: TenantDirectory;
  pendingOwners: PendingOwners;
  provisioner: OwnerProvisioner;
  log: Logger;
  /** The plan of tenants created by signup. */
  plan: Plan;
}

export class Signups {
  constructor(private readonly o: SignupsOptions) {}

  async start(input: SignupInput): Promise<void> {
    const weak = passwordProblems(input.password, { email: input.email, name: input.first_name });
    if (weak.length > 0)
      throw problems.validation(weak.map((p) => ({ field: 'password', message: p.message })));
    const taken = () => problems.conflict(`the tenant name ${input.tenant} is taken`);
    if (this.o.directory.get(input.tenant)) throw taken();
    this.o.directory.assertNotRetained(input.tenant);

    const owner: PendingOwner = {
      signup_id: randomUUID(),
      email: input.email,
      password_hash: await passwordHashing.hash(input.tenant, input.password),
      first_name: input.first_name || null,
      last_name: input.last_name || null,
    };
    // Claimed before the Tenant exists, so the provisioner always finds it; a
    // concurrent signup for the same name stops here.
    if (!(await this.o.pendingOwners.claim(input.tenant, owner))) throw taken();
    const tenant: Tenant = {
      apiVersion,
      kind,
      metadata: {
        name: input.tenant,
        annotations: { [signupAnnotation]: owner.signup_id },
        labels: { 'app.kubernetes.io/created-by': 'tenantry-signup' },
      },
      spec: { displayName: input.display_name, plan: this.o.plan, owner: { email: input.email } },
    };
    try {
      await this.o.resources.create(tenant);
    } catch (error) {
      await this.o.pendingOwners.release(input.tenant, owner);
      if (kubeErrorCode(error) === 409) throw taken();
      throw kubeProblem(error, input.tenant) ?? error;
    }
    this.o.log.info({ tenant: input.tenant, plan: this.o.plan }, 'signup created a tenant');
  }

  /** Only for tenants that signup created; `ready` once the owner can log in. */
  async status(name: string): Promise<SignupStatus> {
    const entry = this.o.directory.get(name);
    if (!entry) {
      // Created a moment ago, not yet seen by the directory's watch.
      if (await this.o.pendingOwners.exists(name)) return { tenant: name, phase: 'Pending', ready: false };
      throw problems.notFound(`no signup for tenant ${name}`);
    }
    if (entry.tenant.metadata.annotations?.[signupAnnotation] === undefined)
      throw problems.notFound(`no signup for tenant ${name}`);
    const phase = entry.tenant.status?.phase ?? 'Pending';
    if (!entry.ready || entry.suspended) return { tenant: name, phase, ready: false };
    let ready = false;
    try {
      ready = await this.o.provisioner.ensureOwner(name);
    } catch (error) {
      this.o.log.warn(
        { tenant: name, err: error instanceof Error ? error.message : String(error) },
        'could not check the owner of a new tenant',
      );
    }
    return { tenant: name, phase, ready };
  }
}
