// The operational answers: liveness, readiness, component health, the JWK set.
import { z } from 'zod';
import { named } from './responses.js';

export const livenessSchema = named('Liveness', z.object({ status: z.literal('ok') }));

const checksSchema = named(
  'DependencyChecks',
  z.record(z.string(), z.object({ ok: z.boolean(), detail: z.string().optional() })),
  'Per dependency: whether it answers, and what went wrong when not.',
);

export const readinessSchema = named(
  'Readiness',
  z.object({ status: z.enum(['ok', 'unavailable']), checks: checksSchema }),
);

export const healthSchema = named(
  'Health',
  z.object({
    status: z.enum(['healthy', 'degraded']),
    components: checksSchema,
    tenants: z.object({ known: z.int().min(0), open_pools: z.int().min(0) }),
  }),
);

export const jwksSchema = named(
  'JsonWebKeySet',
  z.object({
    keys: z.array(
      z.object({
        kty: z.literal('EC'),
        crv: z.literal('P-256'),
        x: z.string(),
        y: z.string(),
        kid: z.string(),
        alg: z.string(),
        use: z.literal('sig'),
      }),
    ),
  }),
  'The public keys that verify access tokens (RFC 7517), newest first.',
);
