import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ControlPlane } from '../../harness/control-plane.js';
import { installTenantCrd, kubectlError, samplesDir } from '../../harness/crds.js';
import { sharedControlPlane } from '../../harness/shared-cluster.js';
import { uniqueSuffix } from '../../harness/services.js';

function tenantYaml(name: string, spec: string): string {
  return `apiVersion: tenantry.io/v1alpha1\nkind: Tenant\nmetadata:\n  name: ${name}\nspec:\n${spec}`;
}

const minimalSpec = '  plan: starter\n  owner: {email: owner@example.com}\n';

describe('Tenant CRD validation (real API server)', function () {
  this.timeout(90_000);
  let cp: ControlPlane;
  const created: string[] = [];
  const dryRun = (yaml: string) => kubectlError(cp, ['apply', '--dry-run=server', '-f', '-'], yaml);

  before(async () => {
    cp = await sharedControlPlane();
    await installTenantCrd(cp);
  });

  after(async () => {
    if (created.length > 0)
      await cp.kubectl(['delete', 'tenant', ...created, '--ignore-not-found', '--wait=false']);
  });

  it('accepts both samples', async () => {
    for (const file of ['tenant-minimal.yaml', 'tenant-full.yaml']) {
      expect(await dryRun(readFileSync(join(samplesDir, file), 'utf8')), file).to.equal('');
    }
  });

  it('defaults deletionPolicy to Retain, locale to C and suspended to false', async () => {
    const name = `crd-defaults-${uniqueSuffix()}`;
    const out = await cp.kubectl(
      ['apply', '--dry-run=server', '-o', 'json', '-f', '-'],
      tenantYaml(name, minimalSpec),
    );
    const tenant = JSON.parse(out) as {
      spec: { suspended: boolean; database: { deletionPolicy: string; locale: string } };
    };
    expect(tenant.spec.database).to.deep.equal({ deletionPolicy: 'Retain', locale: 'C' });
    expect(tenant.spec.suspended).to.equal(false);
  });

  it('rejects a name longer than 40 characters with a clear message', async () => {
    const error = await dryRun(tenantYaml(`a${'b'.repeat(40)}`, minimalSpec));
    expect(error).to.contain('metadata.name must be a DNS-1123 label');
    expect(error).to.contain('at most 40 characters');
  });

  it('rejects a name that is not a DNS-1123 label', async () => {
    expect(await dryRun(tenantYaml('under_score', minimalSpec))).to.match(/metadata.name|RFC 1123|DNS-1123/);
  });

  it('rejects an unknown plan and names the allowed values', async () => {
    const error = await dryRun(tenantYaml('bad-plan', '  plan: gold\n  owner: {email: owner@example.com}\n'));
    expect(error).to.contain('spec.plan');
    expect(error).to.contain('"enterprise"');
  });

  it('rejects a missing owner and an invalid deletionPolicy', async () => {
    expect(await dryRun(tenantYaml('no-owner', '  plan: free\n'))).to.contain('spec.owner');
    const error = await dryRun(
      tenantYaml('bad-policy', `${minimalSpec}  database: {deletionPolicy: Destroy}\n`),
    );
    expect(error).to.contain('spec.database.deletionPolicy');
  });

  it('rejects SAML settings with both or neither metadata source', async () => {
    const both = `${minimalSpec}  sso:\n    saml: {idpMetadataXml: "<x/>", idpMetadataUrl: "https://idp.example/m"}\n`;
    expect(await dryRun(tenantYaml('saml-both', both))).to.contain(
      'set exactly one of spec.sso.saml.idpMetadataXml',
    );
    const neither = `${minimalSpec}  sso:\n    saml: {allowIdpInitiated: false}\n`;
    expect(await dryRun(tenantYaml('saml-none', neither))).to.contain('set exactly one of');
  });

  it('refuses to change the immutable database locale', async () => {
    const name = `crd-immutable-${uniqueSuffix()}`;
    created.push(name);
    await cp.kubectl(['apply', '-f', '-'], tenantYaml(name, `${minimalSpec}  database: {locale: C}\n`));
    const error = await kubectlError(
      cp,
      ['apply', '-f', '-'],
      tenantYaml(name, `${minimalSpec}  database: {locale: en_US.UTF-8}\n`),
    );
    expect(error).to.contain('spec.database.locale is immutable');
    // Other fields stay mutable.
    expect(
      await kubectlError(
        cp,
        ['apply', '-f', '-'],
        tenantYaml(name, '  plan: premium\n  owner: {email: owner@example.com}\n  database: {locale: C}\n'),
      ),
    ).to.equal('');
  });

  it('prunes unknown fields', async () => {
    const name = `crd-prune-${uniqueSuffix()}`;
    created.push(name);
    await cp.kubectl(
      ['apply', '--validate=false', '-f', '-'],
      tenantYaml(name, `${minimalSpec}  favouriteColour: teal\n`),
    );
    const spec = JSON.parse(await cp.kubectl(['get', 'tenant', name, '-o', 'jsonpath={.spec}'])) as Record<
      string,
      unknown
    >;
    expect(spec).to.have.property('plan', 'starter');
    expect(spec).not.to.have.property('favouriteColour');
  });

  it('shows Plan, Phase, Ready and Age columns and answers to the short name', async () => {
    const out = await cp.kubectl(['get', 'tn']);
    expect(out.split('\n')[0]).to.match(/^NAME\s+PLAN\s+PHASE\s+READY\s+AGE\s*$/);
  });

  it('adds database server, schema version and worker replicas with -o wide', async () => {
    const name = `crd-wide-${uniqueSuffix()}`;
    created.push(name);
    await cp.kubectl(['apply', '-f', '-'], tenantYaml(name, minimalSpec));
    const status = { database: { server: 'db.example:5432', schemaVersion: 7 }, worker: { replicas: 2 } };
    await cp.kubectl([
      'patch',
      'tenant',
      name,
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status }),
    ]);
    const [header, row] = (await cp.kubectl(['get', 'tn', name, '-o', 'wide'])).trim().split('\n');
    expect(header).to.match(/^NAME\s+PLAN\s+PHASE\s+READY\s+AGE\s+DATABASE SERVER\s+SCHEMA\s+WORKERS$/);
    expect(row).to.match(new RegExp(`^${name}\\s+starter\\s+.*\\s+db\\.example:5432\\s+7\\s+2$`));
  });

  it('describes every field to kubectl explain', async () => {
    const out = await cp.kubectl(['explain', 'tenants.spec.worker.resources.requests.cpu']);
    expect(out).to.contain('CPU, as a Kubernetes quantity');
    const status = await cp.kubectl(['explain', 'tenants.status.conditions']);
    expect(status).to.contain('One condition per provisioning step');
  });

  describe('worker requests against limits (CEL, with the plan’s defaults)', () => {
    const worker = (plan: string, resources: string) =>
      `  plan: ${plan}\n  owner: {email: owner@example.com}\n  worker:\n    resources: ${resources}\n`;

    it('rejects a cpu request above the cpu limit with a 422 that says so', async () => {
      const error = await dryRun(
        tenantYaml('cel-cpu', worker('premium', '{requests: {cpu: "2"}, limits: {cpu: 1500m}}')),
      );
      expect(error).to.contain('spec.worker.resources.requests.cpu');
      expect(error).to.contain("the worker's cpu request must not exceed its cpu limit");
    });

    it('rejects a request above the plan’s default limit when no limit is given', async () => {
      // starter's default cpu limit is 500m: the Deployment would be refused.
      const cpu = await dryRun(tenantYaml('cel-cpu-plan', worker('starter', '{requests: {cpu: 600m}}')));
      expect(cpu).to.contain("the worker's cpu request must not exceed its cpu limit");
      expect(cpu).to.contain('starter 500m');
      const memory = await dryRun(tenantYaml('cel-mem-plan', worker('free', '{requests: {memory: 1Gi}}')));
      expect(memory).to.contain("the worker's memory request must not exceed its memory limit");
      expect(memory).to.contain('spec.worker.resources.requests.memory');
    });

    it('rejects a limit below the plan’s default request when no request is given', async () => {
      const error = await dryRun(
        tenantYaml('cel-low-limit', worker('enterprise', '{limits: {memory: 128Mi}}')),
      );
      expect(error).to.contain("the worker's memory request must not exceed its memory limit");
    });

    it('compares quantities, not strings, and accepts integers', async () => {
      expect(await dryRun(tenantYaml('cel-ok-1', worker('starter', '{requests: {cpu: 500m}}')))).to.equal('');
      expect(
        await dryRun(
          tenantYaml(
            'cel-ok-2',
            worker('premium', '{requests: {cpu: 1, memory: 1Gi}, limits: {cpu: 2000m, memory: 1024Mi}}'),
          ),
        ),
      ).to.equal('');
      expect(await dryRun(tenantYaml('cel-ok-3', worker('free', '{limits: {cpu: "0.25"}}')))).to.equal('');
    });

    it('rejects replicas times requests or limits beyond the plan’s quota, unless suspended', async () => {
      // free: limits.cpu quota 2, default limit 250m: 9 replicas need 2.25.
      const replicas = (plan: string, n: number, extra = '') =>
        `  plan: ${plan}\n  owner: {email: owner@example.com}\n${extra}  worker:\n    replicas: ${n}\n`;
      const cpu = await dryRun(tenantYaml('cel-quota-cpu', replicas('free', 9)));
      expect(cpu).to.contain(
        "the worker's replicas times its cpu request and its cpu limit must fit the plan's quota",
      );
      expect(cpu).to.contain('free 1/2');
      expect(await dryRun(tenantYaml('cel-quota-fits', replicas('free', 8)))).to.equal('');
      expect(await dryRun(tenantYaml('cel-quota-susp', replicas('free', 9, '  suspended: true\n')))).to.equal(
        '',
      );
      // premium: requests.memory quota 16Gi; 3 × 6Gi = 18Gi.
      const memory = await dryRun(
        tenantYaml(
          'cel-quota-mem',
          '  plan: premium\n  owner: {email: owner@example.com}\n  worker:\n    replicas: 3\n    resources: {requests: {memory: 6Gi}, limits: {memory: 6Gi}}\n',
        ),
      );
      expect(memory).to.contain("the worker's replicas times its memory request and its memory limit");
    });

    it('rejects a plan change that makes the defaults too small for the requests', async () => {
      const name = `crd-plan-${uniqueSuffix()}`;
      created.push(name);
      await cp.kubectl(['apply', '-f', '-'], tenantYaml(name, worker('premium', '{requests: {cpu: 1500m}}')));
      const error = await kubectlError(
        cp,
        ['apply', '-f', '-'],
        tenantYaml(name, worker('starter', '{requests: {cpu: 1500m}}')),
      );
      expect(error).to.contain("the worker's cpu request must not exceed its cpu limit");
    });
  });
});
