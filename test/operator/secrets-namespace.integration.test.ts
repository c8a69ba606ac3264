// The upgrade to a namespace of its own for the Secrets the API reads, on the
// real control plane: the operator moves its tenant copies and the signing keys
// out of the platform namespace (where the admin credentials stay), with the
// same data, and copies OIDC client secrets that belong to platform engineers.
import { expect } from 'chai';
import { createLogger } from '../../lib/logger.js';
import { loadKubeConfig } from '../../lib/kube/kube-config.js';
import { moveApiSecrets } from '../../operator/src/controller/secrets-namespace.js';
import { Cluster } from '../../operator/src/kube/cluster.js';
import type { ControlPlane } from '../harness/control-plane.js';
import { sharedControlPlane } from '../harness/shared-cluster.js';
import { uniqueSuffix } from '../harness/services.js';

describe('moving the API-readable Secrets into the secrets namespace (real control plane)', function () {
  this.timeout(60_000);

  let cp: ControlPlane;
  let cluster: Cluster;
  const run = uniqueSuffix().slice(-6);
  const platform = `tenantry-mv-${run}`;
  const secrets = `${platform}-secrets`;
  const log = createLogger('test', 'silent');

  const secret = (name: string, labels: Record<string, string>, password: string) =>
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name, labels },
      stringData: { password },
    });
  const names = async (namespace: string) =>
    (await cp.kubectl(['get', 'secrets', '-n', namespace, '-o', 'name']))
      .trim()
      .split('\n')
      .filter(Boolean)
      .sort();
  const password = async (namespace: string, name: string) =>
    Buffer.from(
      (await cp.kubectl(['get', 'secret', '-n', namespace, name, '-o', 'jsonpath={.data.password}'])).trim(),
      'base64',
    ).toString('utf8');

  before(async () => {
    cp = await sharedControlPlane();
    cluster = new Cluster(loadKubeConfig(cp.kubeconfigPath));
    for (const namespace of [platform, secrets]) await cp.kubectl(['create', 'namespace', namespace]);
    await cp.kubectl(
      ['apply', '-n', platform, '-f', '-'],
      [
        secret('tenantry-postgres', {}, 'admin-pg'),
        secret(
          'tenant-acme-db',
          { 'tenantry.io/tenant': 'acme', 'tenantry.io/secret-kind': 'database' },
          'acme-pw',
        ),
        secret('tenantry-api-signing-keys', { 'tenantry.io/secret-kind': 'signing-keys' }, 'keys'),
        secret(
          'acme-oidc',
          { 'tenantry.io/tenant': 'acme', 'tenantry.io/secret-kind': 'oidc-client' },
          'oidc',
        ),
      ].join('\n---\n'),
    );
  });

  after(async () => {
    for (const namespace of [platform, secrets]) {
      await cp.kubectl(['delete', 'namespace', namespace, '--wait=false']).catch(() => undefined);
    }
  });

  it('moves the copies and signing keys with their data, copies OIDC secrets, and leaves admin credentials', async () => {
    const result = await moveApiSecrets(cluster, platform, secrets, log);
    expect(result.moved.sort()).to.deep.equal(['tenant-acme-db', 'tenantry-api-signing-keys']);
    expect(result.copied).to.deep.equal(['acme-oidc']);
    expect(await names(secrets)).to.deep.equal([
      'secret/acme-oidc',
      'secret/tenant-acme-db',
      'secret/tenantry-api-signing-keys',
    ]);
    expect(await names(platform)).to.deep.equal(['secret/acme-oidc', 'secret/tenantry-postgres']);
    // Same password, same keys: nothing is regenerated, no token is invalidated.
    expect(await password(secrets, 'tenant-acme-db')).to.equal('acme-pw');
    expect(await password(secrets, 'tenantry-api-signing-keys')).to.equal('keys');
    const labels = JSON.parse(
      await cp.kubectl([
        'get',
        'secret',
        '-n',
        secrets,
        'tenant-acme-db',
        '-o',
        'jsonpath={.metadata.labels}',
      ]),
    ) as Record<string, string>;
    expect(labels).to.deep.include({ 'tenantry.io/tenant': 'acme', 'tenantry.io/secret-kind': 'database' });

    // Again (another replica, a restart): nothing left to move, and the copy already there is kept.
    await cp.kubectl([
      'patch',
      'secret',
      '-n',
      secrets,
      'acme-oidc',
      '-p',
      '{"stringData":{"password":"rotated"}}',
    ]);
    const again = await moveApiSecrets(cluster, platform, secrets, log);
    expect(again.moved).to.deep.equal([]);
    expect(await password(secrets, 'acme-oidc')).to.equal('rotated');
  });
});
