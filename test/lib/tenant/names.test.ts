// Derived names are unique to their tenant: two different valid Tenant names
// never share a database, role, namespace, Secret, RabbitMQ user or queue
// prefix, across kinds too (one tenant's login role is never another's owner
// role). And the ownership rules that keep the operator off what it does not own.
import { expect } from 'chai';
import fc from 'fast-check';
import { signingKeySecretName } from '../../../lib/signing-keys.js';
import {
  claimOf,
  claimOfKubernetesObject,
  markedUid,
  markedUidOfTags,
  NameConflictError,
  ownershipMarker,
  restoreFromUidAnnotation,
  tenantOwner,
  tenantUidLabel,
  apiVersion,
  kind,
  legacyRoleNames,
  tenantNames,
  type Tenant,
} from '../../../lib/tenant/index.js';
import { loadOperatorConfig } from '../../../operator/src/config.js';
import {
  amqpSecret,
  databaseSecret,
  limitRangeName,
  namespace,
  networkPolicyNames,
  platformDatabaseSecret,
  resourceQuotaName,
} from '../../../operator/src/specs/index.js';

const validName = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const maxLength = 40;

const edgeNames = [
  'a',
  'a-a',
  'a-b',
  'a-app',
  'a--b',
  'a--a',
  'a-a-a',
  'xn--a',
  'xn--a-a',
  'acme',
  'acme-a',
  'acme-app',
  'acme-db',
  'acme-amqp',
  'a'.repeat(maxLength),
  `${'a'.repeat(maxLength - 2)}-a`,
  `${'a-'.repeat(maxLength / 2 - 1)}ab`,
  `${'z'.repeat(maxLength - 4)}-app`,
  '9'.repeat(maxLength),
];

/** Valid Tenant names, with the edge cases and names built to meet another's suffixes. */
const tenantName = fc.oneof(
  fc.constantFrom(...edgeNames),
  fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$/),
  fc
    .tuple(
      fc.oneof(fc.constantFrom('a', 'acme', 'xn--a', 'a'.repeat(36)), fc.stringMatching(/^[a-z0-9]{1,8}$/)),
      fc.array(fc.constantFrom('-a', '-b', '-app', '-db', '-amqp', '--a', '-a-a'), { maxLength: 3 }),
    )
    .map(([base, suffixes]) => base + suffixes.join(''))
    .filter((name) => name.length <= maxLength),
);

/** Every name that lives in one shared space, tagged with its kind. */
function sharedNames(name: string): { space: string; kind: string; value: string }[] {
  const n = tenantNames(name);
  return [
    // Roles and databases: one server, and a role must never be mistaken for a database's owner.
    { space: 'postgres', kind: 'database', value: n.database },
    { space: 'postgres', kind: 'owner role', value: n.ownerRole },
    { space: 'postgres', kind: 'app role', value: n.appRole },
    { space: 'postgres', kind: 'login role a', value: n.loginRoles[0] },
    { space: 'postgres', kind: 'login role b', value: n.loginRoles[1] },
    { space: 'namespace', kind: 'namespace', value: n.namespace },
    { space: 'platform secret', kind: 'platform database Secret', value: n.platformDbSecret },
    { space: 'rabbitmq user', kind: 'RabbitMQ user', value: n.amqpUser },
    { space: 'rabbitmq resource', kind: 'queue prefix', value: n.queuePrefix },
  ];
}

describe('derived tenant names', () => {
  it('generates only valid Tenant names, the edge cases included', () => {
    for (const name of edgeNames) expect(name, name).to.match(validName).and.have.length.at.most(maxLength);
    fc.assert(fc.property(tenantName, (name) => validName.test(name) && name.length <= maxLength));
  });

  it('never gives two different names a shared database, role, namespace, Secret, user or queue prefix', () => {
    fc.assert(
      fc.property(tenantName, tenantName, (x, y) => {
        fc.pre(x !== y);
        for (const a of sharedNames(x)) {
          for (const b of sharedNames(y)) {
            if (a.space !== b.space) continue;
            if (a.value === b.value) {
              throw new Error(`${x}'s ${a.kind} and ${y}'s ${b.kind} are both ${a.value}`);
            }
            // Permissions are prefix regexes and deletion goes by prefix: neither may extend the other.
            if (a.kind === 'queue prefix' && (a.value.startsWith(b.value) || b.value.startsWith(a.value))) {
              throw new Error(`queue prefixes ${a.value} and ${b.value} overlap`);
            }
          }
        }
      }),
      {
        numRuns: 5000,
        examples: [
          ['acme', 'acme-a'],
          ['acme', 'acme-app'],
          ['a', 'a-a'],
          ['a--b', 'a-b'],
        ],
      },
    );
  });

  it('checks the pairs of the finding and of the edge cases exhaustively', () => {
    const all = edgeNames.flatMap((name) => sharedNames(name).map((entry) => ({ ...entry, name })));
    for (const a of all) {
      for (const b of all) {
        if (a.name !== b.name && a.space === b.space)
          expect(a.value, `${a.name} vs ${b.name}`).not.to.equal(b.value);
      }
    }
  });

  it('keeps the kinds of one tenant apart, and only the database shares its owner role’s name', () => {
    fc.assert(
      fc.property(tenantName, (name) => {
        const n = tenantNames(name);
        expect(n.database).to.equal(n.ownerRole);
        const roles = [n.ownerRole, n.appRole, ...n.loginRoles];
        expect(new Set(roles).size).to.equal(4);
        // In the tenant namespace: the two Secrets, the worker, the quota and the policies.
        const inNamespace = [
          n.dbSecret,
          n.amqpSecret,
          n.workerName,
          resourceQuotaName,
          limitRangeName,
          ...networkPolicyNames,
        ];
        expect(new Set(inNamespace).size).to.equal(inNamespace.length);
      }),
    );
  });

  it('fits PostgreSQL identifiers (63 bytes, longer ones are silently cut) and Kubernetes names', () => {
    fc.assert(
      fc.property(tenantName, (name) => {
        const n = tenantNames(name);
        for (const role of [n.database, n.ownerRole, n.appRole, ...n.loginRoles])
          expect(Buffer.byteLength(role), role).to.be.at.most(63);
        expect(n.namespace).to.match(validName).and.have.length.at.most(63);
        for (const secret of [n.dbSecret, n.amqpSecret, n.platformDbSecret]) {
          expect(secret).to.match(validName).and.have.length.at.most(253);
        }
      }),
    );
  });

  it('never equals a fixed platform object name', () => {
    const fixedNamespaces = ['default', 'kube-system', 'kube-public', 'kube-node-lease', 'tenantry-system'];
    fc.assert(
      fc.property(tenantName, (name) => {
        const n = tenantNames(name);
        expect(fixedNamespaces).not.to.include(n.namespace);
        expect(n.platformDbSecret).not.to.equal(signingKeySecretName);
        expect(n.amqpUser).not.to.equal('guest');
      }),
    );
  });

  it('refuses a platform namespace that a tenant namespace could equal', () => {
    expect(() => loadOperatorConfig({ OPERATOR_NAMESPACE: 'tenant-system' })).to.throw(/OPERATOR_NAMESPACE/);
    expect(loadOperatorConfig({ OPERATOR_NAMESPACE: 'tenantry-system' }).namespace).to.equal(
      'tenantry-system',
    );
  });

  it('documents the collision of the old scheme that the current one removes', () => {
    expect(legacyRoleNames(tenantNames('acme')).loginRoles[0]).to.equal(tenantNames('acme-a').ownerRole);
    expect(legacyRoleNames(tenantNames('acme')).appRole).to.equal(tenantNames('acme-app').ownerRole);
    expect(tenantNames('acme').loginRoles).to.deep.equal(['tenant_acme.a', 'tenant_acme.b']);
    expect(tenantNames('acme').appRole).to.equal('tenant_acme.app');
    // Databases and owner roles keep their names, so existing tenants keep their data where it is.
    expect(tenantNames('acme-a').database).to.equal('tenant_acme_a');
  });
});

describe('ownership markers', () => {
  const uid = '6f1c2d1e-8a9b-4c3d-9e8f-0a1b2c3d4e5f';
  const other = '0b6d1c1e-1111-2222-3333-444455556666';

  it('writes and reads the marker, and nothing else counts as one', () => {
    expect(ownershipMarker(uid)).to.equal(`tenantry.io/tenant-uid=${uid}`);
    expect(markedUid(ownershipMarker(uid))).to.equal(uid);
    for (const text of [
      null,
      undefined,
      '',
      'a comment',
      `tenantry.io/tenant-uid=${uid} extra`,
      `x${ownershipMarker(uid)}`,
    ])
      expect(markedUid(text), String(text)).to.equal(undefined);
    expect(markedUidOfTags(['monitoring', ownershipMarker(other)])).to.equal(other);
    expect(() => ownershipMarker("x' OR '1")).to.throw(/not a Tenant uid/);
  });

  it('lets a Tenant use what is free, its own, restored on request or recorded in its status; nothing else', () => {
    const owner = { uid, recorded: ['tenant_acme'] };
    const found = (name: string, marker: string | null) => ({ name, exists: true, marker });
    expect(claimOf({ name: 'tenant_acme', exists: false, marker: null }, owner)).to.equal('absent');
    expect(claimOf(found('tenant_acme', ownershipMarker(uid)), owner)).to.equal('own');
    expect(claimOf(found('tenant_acme', ownershipMarker(other)), owner)).to.equal('foreign');
    expect(claimOf(found('tenant_acme', null), owner)).to.equal('recognised');
    expect(claimOf(found('tenant_acme.a', null), owner)).to.equal('foreign');
    expect(claimOf(found('tenant_acme', 'some comment'), { uid })).to.equal('foreign');
    expect(claimOf(found('tenant_acme', ownershipMarker(other)), { uid, restoreFromUid: other })).to.equal(
      'restore',
    );
    // The restore annotation takes over that uid's objects only.
    expect(claimOf(found('tenant_acme', null), { uid, restoreFromUid: other })).to.equal('foreign');
    // Outside the operator (no uid): unmarked objects only.
    expect(claimOf(found('tenant_acme', null), {})).to.equal('own');
    expect(claimOf(found('tenant_acme', ownershipMarker(uid)), {})).to.equal('foreign');
  });

  it('reads the owner of a Kubernetes object from its uid label or controlling Tenant reference', () => {
    const owner = { uid, recorded: ['tenant-kept'] };
    const ref = (id: string) => ({ ownerReferences: [{ kind: 'Tenant', uid: id, controller: true }] });
    expect(claimOfKubernetesObject('tenant-acme', undefined, owner)).to.equal('absent');
    expect(claimOfKubernetesObject('tenant-acme', ref(uid), owner)).to.equal('own');
    expect(claimOfKubernetesObject('tenant-acme', { labels: { [tenantUidLabel]: uid } }, owner)).to.equal(
      'own',
    );
    expect(claimOfKubernetesObject('tenant-acme', ref(other), owner)).to.equal('foreign');
    expect(claimOfKubernetesObject('tenant-acme', {}, owner)).to.equal('foreign');
    expect(claimOfKubernetesObject('tenant-kept', {}, owner)).to.equal('recognised');
  });

  it('labels every Kubernetes object with the Tenant uid beside the owner reference', () => {
    const tenant: Tenant = {
      apiVersion,
      kind,
      metadata: { name: 'acme', uid },
      spec: { plan: 'free', owner: { email: 'o@acme.test' } },
    };
    const objects = [
      namespace(tenant),
      databaseSecret(tenant, {}),
      amqpSecret(tenant, {}),
      platformDatabaseSecret(tenant, {}, 'tenantry-system'),
    ];
    for (const object of objects) expect(object.metadata.labels?.[tenantUidLabel]).to.equal(uid);
    for (const object of objects.slice(0, 3)) expect(object.metadata.ownerReferences?.[0]?.uid).to.equal(uid);
  });

  it('takes the uid, the restore annotation and the recorded names from the Tenant', () => {
    const tenant: Tenant = {
      apiVersion,
      kind,
      metadata: { name: 'acme', uid, annotations: { [restoreFromUidAnnotation]: ` ${other} ` } },
      spec: { plan: 'free', owner: { email: 'o@acme.test' } },
      status: {
        database: { name: 'tenant_acme', ownerRole: 'tenant_acme', username: 'tenant_acme_a' },
        messaging: { username: 'tenant-acme' },
      },
    };
    expect(tenantOwner(tenant)).to.deep.equal({
      uid,
      restoreFromUid: other,
      recorded: ['tenant_acme', 'tenant_acme', 'tenant_acme_a', 'tenant-acme'],
    });
    expect(tenantOwner({ ...tenant, metadata: { name: 'acme', uid }, status: {} })).to.deep.equal({
      uid,
      recorded: [],
    });
  });

  it('names the objects in a conflict, never a uid', () => {
    const error = new NameConflictError(['role "tenant_acme.a"']);
    expect(error.message).to.contain('role "tenant_acme.a"').and.not.contain(other);
  });
});
