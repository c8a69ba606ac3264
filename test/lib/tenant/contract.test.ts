// The Tenant contract in lib/tenant mirrors the CRD, which validates: the plans
// and roles the types name are the ones the CRD and the tenant schema accept.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { nonOwnerRoles, planPolicies, plans, roles } from '../../../lib/tenant/index.js';
import { migrations } from '../../../lib/tenant-schema/migrations.js';
import { apiDocument } from '../../../api/src/openapi/api-document.js';
import { repoRoot as root } from '../../harness/repo-root.js';

interface SchemaNode {
  description?: string;
  items?: SchemaNode;
  'x-kubernetes-validations'?: { rule: string; message: string }[];
  enum?: string[];
  properties?: Record<string, SchemaNode>;
  additionalProperties?: SchemaNode;
}

function rootSchema(): SchemaNode {
  const crd = parse(readFileSync(join(root, 'crds/tenants.tenantry.io.yaml'), 'utf8')) as {
    spec: { versions: { schema: { openAPIV3Schema: SchemaNode } }[] };
  };
  return crd.spec.versions[0]!.schema.openAPIV3Schema;
}

function specSchema(): SchemaNode {
  return rootSchema().properties!.spec!;
}

/** The paths of every property (under properties, items and additionalProperties) without a description. */
function undescribed(node: SchemaNode, path: string): string[] {
  const missing: string[] = [];
  for (const [name, child] of Object.entries(node.properties ?? {})) {
    const at = `${path}.${name}`;
    if (!child.description?.trim()) missing.push(at);
    missing.push(...undescribed(child, at));
  }
  if (node.items) missing.push(...undescribed(node.items, `${path}[]`));
  if (node.additionalProperties) missing.push(...undescribed(node.additionalProperties, `${path}{}`));
  return missing;
}

/** Every `enum` under a property called `name`, anywhere in `value`. */
function enumsOf(value: unknown, name: string): unknown[] {
  if (typeof value !== 'object' || value === null) return [];
  const found: unknown[] = [];
  const node = value as { properties?: Record<string, { enum?: unknown }> };
  const own = node.properties?.[name]?.enum;
  if (own !== undefined) found.push(own);
  for (const child of Object.values(value)) found.push(...enumsOf(child, name));
  return found;
}

describe('Tenant contract (lib/tenant) against the CRD and the API document', () => {
  it('describes every field of the CRD (kubectl explain shows them)', () => {
    expect(rootSchema().description).to.be.a('string');
    // metadata is the one exception: the API server forbids anything but its type, and explains it itself.
    expect(undescribed(rootSchema(), 'tenants')).to.deep.equal(['tenants.metadata']);
    // The walk itself finds a missing description.
    expect(undescribed({ properties: { a: { properties: { b: {} } } } }, 'x')).to.deep.equal([
      'x.a',
      'x.a.b',
    ]);
  });

  it('has the worker CEL rules use the plans’ container defaults', () => {
    const rules = specSchema()['x-kubernetes-validations']!.map((v) => v.rule);
    for (const [resource, index] of [
      ['cpu', 0],
      ['memory', 1],
    ] as const) {
      const rule = rules[index]!;
      expect(rule).to.contain(`requests.${resource}`);
      for (const plan of plans) {
        const { requests, limits } = planPolicies[plan].containerDefaults;
        const defaults = [...rule.matchAll(new RegExp(`'${plan}': '([^']+)'`, 'g'))].map((m) => m[1]);
        expect(defaults, `${plan} ${resource}`).to.deep.equal([requests[resource], limits[resource]]);
      }
    }
  });

  it('has the worker quota CEL rules use the plans’ replicas and quotas', () => {
    const rules = specSchema()['x-kubernetes-validations']!.map((v) => v.rule);
    for (const [resource, index] of [
      ['cpu', 2],
      ['memory', 3],
    ] as const) {
      const rule = rules[index]!;
      expect(rule).to.contain(`limits.${resource}`);
      for (const plan of plans) {
        const { containerDefaults, quota, workerReplicas } = planPolicies[plan];
        const quoted = [...rule.matchAll(new RegExp(`'${plan}': '([^']+)'`, 'g'))].map((m) => m[1]);
        const Resource = resource === 'cpu' ? 'Cpu' : 'Memory';
        expect(quoted, `${plan} ${resource}`).to.deep.equal([
          containerDefaults.requests[resource],
          quota[`requests${Resource}`],
          containerDefaults.limits[resource],
          quota[`limits${Resource}`],
        ]);
        expect(rule).to.contain(`'${plan}': ${workerReplicas}`);
      }
    }
  });

  it('names the plans the CRD accepts', () => {
    expect(specSchema().properties!.plan!.enum).to.deep.equal([...plans]);
  });

  it('names the roles the CRD maps SSO groups to, and the default roles it accepts', () => {
    const sso = specSchema().properties!.sso!.properties!;
    for (const provider of ['oidc', 'saml']) {
      const settings = sso[provider]!.properties!;
      expect(settings.roleMapping!.additionalProperties!.enum, provider).to.deep.equal([...roles]);
      expect(settings.defaultRole!.enum, provider).to.deep.equal([...nonOwnerRoles]);
    }
  });

  it('names the roles the tenant schema allows in users.role', () => {
    const sql = migrations.map((m) => m.sql).join('\n');
    const allowed = `role IN (${roles.map((r) => `'${r}'`).join(', ')})`;
    expect(sql).to.include(allowed);
  });

  it('gives the OpenAPI document the same plans and roles', () => {
    const document = apiDocument();
    const planEnums = enumsOf(document, 'plan');
    expect(planEnums).to.not.be.empty;
    for (const e of planEnums) expect(e).to.deep.equal([...plans]);
    const roleEnums = enumsOf(document, 'role');
    expect(roleEnums).to.deep.include([...roles]);
    for (const e of roleEnums) expect([[...roles], [...nonOwnerRoles]]).to.deep.include(e);
  });
});
