// The operator end to end on a real control plane, PostgreSQL and RabbitMQ:
// each provisioned object is checked in its own system.
import { expect } from 'chai';
import pg from 'pg';
import { restoreFromUidAnnotation, conditionTypes, tenantNames } from '../../lib/tenant/index.js';
import { tenantPermissionPattern } from '../../operator/src/messaging/rabbitmq-admin.js';
import type { ControlPlane } from '../harness/control-plane.js';
import { installTenantCrd } from '../harness/crds.js';
import { startOperator, type OperatorProcess } from '../harness/operator-process.js';
import { dropAdminRole, grantAdminConnect, preparePostgresServer } from '../harness/postgres-server.js';
import {
  createTestVhost,
  rabbitManagement,
  serviceUrls,
  uniqueSuffix,
  withPostgresAdmin,
  type TestVhost,
} from '../harness/services.js';
import { sharedControlPlane } from '../harness/shared-cluster.js';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.js';
import { eventually } from '../harness/wait.js';

interface TenantObject {
  metadata: { name: string; generation: number };
  status?: {
    phase?: string;
    observedGeneration?: number;
    conditions?: { type: string; status: string; reason: string; message: string }[];
    database?: { username?: string; schemaVersion?: number; retiringUsername?: string };
  };
}

const secretKeys = ['dbname', 'host', 'jdbc-uri', 'password', 'pgpass', 'port', 'uri', 'username'];

describe('Tenant operator (real control plane, PostgreSQL and RabbitMQ)', function () {
  this.timeout(180_000);
  const run = uniqueSuffix().slice(-6);
  const platformNamespace = `tenantry-op-${run}`;
  const adminRole = `tenantry_op_admin_${run}`;
  const tenants: string[] = [];
  let cp: ControlPlane;
  let vhost: TestVhost;
  let proxy: TcpProxy;
  let operator: OperatorProcess;
  let operatorEnv: Record<string, string>;

  const tenantName = (label: string) => {
    const name = `op${run}-${label}`;
    tenants.push(name);
    return name;
  };

  const getTenant = async (name: string) =>
    JSON.parse(await cp.kubectl(['get', 'tenant', name, '-o', 'json'])) as TenantObject;

  const condition = (t: TenantObject, type: string) => t.status?.conditions?.find((c) => c.type === type);

  const waitReady = (name: string, timeoutMs = 60_000) =>
    eventually(
      `tenant ${name} to be Ready`,
      async () => {
        const t = await getTenant(name);
        return condition(t, 'Ready')?.status === 'True' &&
          t.status?.observedGeneration === t.metadata.generation
          ? t
          : undefined;
      },
      { timeoutMs },
    );

  const applyTenant = (name: string, extra = '') =>
    cp.kubectl(
      ['apply', '-f', '-'],
      `apiVersion: tenantry.io/v1alpha1
kind: Tenant
metadata: {name: ${name}}
spec:
  plan: starter
  owner: {email: owner@${name}.example}
${extra}`,
    );

  const secretData = async (namespace: string, name: string): Promise<Record<string, string>> => {
    const secret = JSON.parse(await cp.kubectl(['get', 'secret', '-n', namespace, name, '-o', 'json'])) as {
      data: Record<string, string>;
    };
    return Object.fromEntries(
      Object.entries(secret.data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
    );
  };

  const exists = async (args: string[]) =>
    (await cp.kubectl(['get', ...args, '--ignore-not-found', '-o', 'name'])).trim() !== '';

  const sql = <T extends pg.QueryResultRow>(text: string, values: unknown[] = []) =>
    withPostgresAdmin((c) => c.query<T>(text, values));

  const connectAs = async (uri: string, database?: string) => {
    const url = new URL(uri);
    if (database) url.pathname = `/${database}`;
    const client = new pg.Client({ connectionString: url.toString() });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  };

  before(async () => {
    cp = await sharedControlPlane();
    await installTenantCrd(cp);
    vhost = await createTestVhost('operator');
    proxy = await startTcpProxy(Number(new URL(serviceUrls.postgres).port || 5432));
    // The operator runs as a role with CREATEDB and CREATEROLE only: no superuser.
    await preparePostgresServer();
    await sql(`CREATE ROLE "${adminRole}" LOGIN CREATEDB CREATEROLE`);
    await withPostgresAdmin((c) => grantAdminConnect(c, adminRole));
    const adminUrl = new URL(serviceUrls.postgres);
    adminUrl.username = adminRole;
    adminUrl.password = '';
    adminUrl.port = String(proxy.port);
    operatorEnv = {
      KUBECONFIG: cp.kubeconfigPath,
      OPERATOR_NAMESPACE: platformNamespace,
      POSTGRES_URL: adminUrl.toString(),
      TENANT_DB_HOST: '127.0.0.1',
      TENANT_DB_PORT: new URL(serviceUrls.postgres).port || '5432',
      RABBITMQ_VHOST: vhost.name,
      RESYNC_SECONDS: '2',
      LEASE_NAME: `tenantry-operator-${run}`,
      LEASE_DURATION_SECONDS: '4',
      WORKER_IMAGE: 'registry.invalid/tenantry:test',
    };
    operator = await startOperator({ ...operatorEnv, POD_NAME: 'operator-a' });
  });

  after(async () => {
    // Delete what is left with the Delete policy so the databases go too.
    for (const name of tenants) {
      await cp
        .kubectl([
          'patch',
          'tenant',
          name,
          '--type=merge',
          '-p',
          '{"spec":{"database":{"deletionPolicy":"Delete"}}}',
        ])
        .catch(() => undefined);
    }
    if (tenants.length > 0) {
      await cp
        .kubectl(['delete', 'tenant', ...tenants, '--ignore-not-found', '--timeout=60s'])
        .catch(() => undefined);
    }
    await operator?.kill('SIGTERM');
    await proxy?.close();
    for (const name of tenants) {
      const n = tenantNames(name);
      await sql(`DROP DATABASE IF EXISTS "${n.database}" WITH (FORCE)`).catch(() => undefined);
      for (const role of [...n.loginRoles, n.appRole, n.ownerRole]) {
        await sql(`DROP ROLE IF EXISTS "${role}"`).catch(() => undefined);
      }
    }
    await withPostgresAdmin((c) => dropAdminRole(c, adminRole)).catch(() => undefined);
    await vhost?.drop();
  });

  describe('a new Tenant', () => {
    let name: string;
    let other: string;
    let tenant: TenantObject;

    before(async () => {
      name = tenantName('full');
      other = tenantName('other');
      await Promise.all([applyTenant(name), applyTenant(other)]);
      [tenant] = await Promise.all([waitReady(name), waitReady(other)]);
    });

    it('reports every step True, phase Ready and the schema version', () => {
      for (const type of conditionTypes) {
        expect(condition(tenant, type)?.status, type).to.equal('True');
      }
      expect(tenant.status?.phase).to.equal('Ready');
      expect(tenant.status?.database?.schemaVersion).to.be.a('number').greaterThan(0);
    });

    it('creates the namespace, labelled and owned by the Tenant', async () => {
      const ns = JSON.parse(await cp.kubectl(['get', 'namespace', `tenant-${name}`, '-o', 'json'])) as {
        metadata: { labels: Record<string, string>; ownerReferences: { kind: string; name: string }[] };
      };
      expect(ns.metadata.labels['tenantry.io/tenant']).to.equal(name);
      expect(ns.metadata.ownerReferences[0]).to.include({ kind: 'Tenant', name });
    });

    it('creates the database and roles, with CONNECT revoked from PUBLIC', async () => {
      const n = tenantNames(name);
      const db = await sql<{ owner: string; public_connect: boolean }>(
        `SELECT pg_get_userbyid(datdba) AS owner, has_database_privilege('public', datname, 'CONNECT') AS public_connect
           FROM pg_database WHERE datname = $1`,
        [n.database],
      );
      expect(db.rows[0]).to.deep.equal({ owner: n.ownerRole, public_connect: false });
      const roles = await sql<{ rolname: string; rolcanlogin: boolean; rolsuper: boolean }>(
        'SELECT rolname, rolcanlogin, rolsuper FROM pg_roles WHERE rolname = ANY($1) ORDER BY rolname',
        [[n.ownerRole, ...n.loginRoles]],
      );
      expect(roles.rows.map((r) => [r.rolname, r.rolcanlogin, r.rolsuper])).to.deep.equal([
        [n.ownerRole, false, false],
        [n.loginRoles[0], true, false],
        [n.loginRoles[1], false, false],
      ]);
    });

    it('writes a complete connection Secret, and a labelled copy for the API', async () => {
      const data = await secretData(`tenant-${name}`, `${name}-db`);
      expect(Object.keys(data).sort()).to.deep.equal(secretKeys);
      expect(data.dbname).to.equal(tenantNames(name).database);
      expect(data.pgpass).to.equal(`127.0.0.1:${data.port}:${data.dbname}:${data.username}:${data.password}`);
      const copies = await cp.kubectl([
        'get',
        'secret',
        '-n',
        platformNamespace,
        '-l',
        `tenantry.io/tenant=${name}`,
        '-o',
        'name',
      ]);
      expect(copies.trim()).to.equal(`secret/tenant-${name}-db`);
      expect(await secretData(platformNamespace, `tenant-${name}-db`)).to.deep.equal(data);
    });

    it("connects with the Secret's URI, and cannot connect to another tenant's database", async () => {
      const data = await secretData(`tenant-${name}`, `${name}-db`);
      const own = await connectAs(data.uri!);
      const who = await own.query<{ user: string; db: string }>(
        'SELECT current_user AS user, current_database() AS db',
      );
      expect(who.rows[0]).to.deep.equal({ user: data.username, db: data.dbname });
      await own.query("INSERT INTO app.users (email, role) VALUES ('a@x.example', 'member')");
      await own.end();
      const error = await connectAs(data.uri!, tenantNames(other).database).then(
        async (c) => {
          await c.end();
          return undefined;
        },
        (e: { code?: string }) => e,
      );
      expect(error?.code).to.equal('42501');
    });

    it('applies NetworkPolicies, quota and limits', async () => {
      const ns = `tenant-${name}`;
      const policies = (await cp.kubectl(['get', 'networkpolicy', '-n', ns, '-o', 'name']))
        .trim()
        .split('\n')
        .sort();
      expect(policies).to.have.length(6);
      const quota = JSON.parse(await cp.kubectl(['get', 'resourcequota', '-n', ns, '-o', 'json'])) as {
        items: { spec: { hard: Record<string, string> } }[];
      };
      expect(quota.items[0]?.spec.hard.pods).to.equal('20');
      expect(await exists(['limitrange', '-n', ns])).to.be.true;
    });

    it('creates a RabbitMQ user limited to the tenant prefix, with its Secret', async () => {
      const n = tenantNames(name);
      const response = await rabbitManagement('GET', `/users/${encodeURIComponent(n.amqpUser)}/permissions`);
      const permissions = (await response.json()) as {
        vhost: string;
        configure: string;
        write: string;
        read: string;
      }[];
      const pattern = tenantPermissionPattern(n.queuePrefix);
      expect(permissions.map((p) => [p.vhost, p.configure, p.write, p.read])).to.deep.equal([
        [vhost.name, pattern, pattern, pattern],
      ]);
      const amqp = await secretData(`tenant-${name}`, `${name}-amqp`);
      expect(amqp.username).to.equal(n.amqpUser);
      expect(amqp.queuePrefix).to.equal(`tenant.${name}.`);
    });

    it('runs an available worker Deployment with its ServiceAccount', async () => {
      const ns = `tenant-${name}`;
      expect(await exists(['serviceaccount', '-n', ns, 'tenantry-worker'])).to.be.true;
      const available = await cp.kubectl([
        'get',
        'deploy',
        '-n',
        ns,
        'tenantry-worker',
        '-o',
        'jsonpath={.status.availableReplicas}',
      ]);
      expect(available.trim()).to.equal('1');
    });

    it('records Normal events about the provisioning', async () => {
      const events = await cp.kubectl([
        'get',
        'events',
        '-n',
        'default',
        '--field-selector',
        `involvedObject.name=${name}`,
        '-o',
        'jsonpath={.items[*].reason}',
      ]);
      expect(events.split(' ')).to.include.members(['DatabaseCreated', 'Ready']);
    });
  });

  describe('drift correction', () => {
    let name: string;

    before(async () => {
      name = tenantName('drift');
      await applyTenant(name);
      await waitReady(name);
    });

    it('brings back a deleted Secret with the same password', async () => {
      const before = await secretData(`tenant-${name}`, `${name}-db`);
      await cp.kubectl(['delete', 'secret', '-n', `tenant-${name}`, `${name}-db`]);
      const after = await eventually('the Secret to come back', () =>
        secretData(`tenant-${name}`, `${name}-db`).catch(() => undefined),
      );
      expect(after.password).to.equal(before.password);
    });

    it('reverts an edited NetworkPolicy', async () => {
      await cp.kubectl([
        'patch',
        'networkpolicy',
        '-n',
        `tenant-${name}`,
        'default-deny',
        '--type=merge',
        '-p',
        '{"spec":{"ingress":[{}]}}',
      ]);
      await eventually('the default-deny policy to be restored', async () => {
        const ingress = await cp.kubectl([
          'get',
          'networkpolicy',
          '-n',
          `tenant-${name}`,
          'default-deny',
          '-o',
          'jsonpath={.spec.ingress}',
        ]);
        return ingress.trim() === '' ? true : undefined;
      });
    });

    it('revokes CONNECT re-granted to PUBLIC', async () => {
      const db = tenantNames(name).database;
      await sql(`GRANT CONNECT ON DATABASE "${db}" TO PUBLIC`);
      await eventually('CONNECT to be revoked from PUBLIC', async () => {
        const r = await sql<{ ok: boolean }>(`SELECT has_database_privilege('public', $1, 'CONNECT') AS ok`, [
          db,
        ]);
        return r.rows[0]?.ok === false ? true : undefined;
      });
    });

    it('recreates a dropped login role that works with the Secret', async () => {
      const data = await secretData(`tenant-${name}`, `${name}-db`);
      await sql(`DROP ROLE "${data.username}"`);
      const client = await eventually('the login role to come back', () =>
        connectAs(data.uri!).catch(() => undefined),
      );
      const r = await client.query<{ user: string }>('SELECT current_user AS user');
      await client.end();
      expect(r.rows[0]?.user).to.equal(data.username);
    });
  });

  describe('password rotation', () => {
    it('switches login role, updates the Secret, rolls the worker and keeps open connections working', async () => {
      const name = tenantName('rotate');
      await applyTenant(name);
      await waitReady(name);
      const ns = `tenant-${name}`;
      const before = await secretData(ns, `${name}-db`);
      const workerChecksum = () =>
        cp.kubectl([
          'get',
          'deploy',
          '-n',
          ns,
          'tenantry-worker',
          '-o',
          "jsonpath={.spec.template.metadata.annotations['tenantry\\.io/credentials-checksum']}",
        ]);
      const checksumBefore = await workerChecksum();
      const open = await connectAs(before.uri!);
      await cp.kubectl(['annotate', 'tenant', name, 'tenantry.io/rotate-password=now-1']);
      const after = await eventually('the Secret to change', async () => {
        const d = await secretData(ns, `${name}-db`);
        return d.username !== before.username ? d : undefined;
      });
      // The connection opened with the old credentials keeps working while the workload rolls. Only the
      // retirement of the old login, once the worker has rolled, ends it; with KWOK the roll can be over
      // before this line runs, and then the retirement must be what ended it.
      const stillOpen = await open.query<{ one: number }>('SELECT 1 AS one').then(
        (r) => r.rows[0]?.one === 1,
        () => false,
      );
      if (!stillOpen) {
        await eventually('the LoginRetired event that ended the old session', async () => {
          const reasons = await cp.kubectl([
            'get',
            'events',
            '-n',
            'default',
            '--field-selector',
            `involvedObject.name=${name},reason=LoginRetired`,
            '-o',
            'jsonpath={.items[*].message}',
          ]);
          return reasons.includes(`retired ${before.username} after the worker rolled`) ? true : undefined;
        });
      }
      expect(after.password).not.to.equal(before.password);
      const fresh = await connectAs(after.uri!);
      await fresh.end();
      await eventually('the worker template to change', async () =>
        (await workerChecksum()) !== checksumBefore ? true : undefined,
      );
      // Once the worker has rolled, the old login role is retired.
      await eventually('the old login to be retired', async () => {
        const t = await getTenant(name);
        const r = await sql<{ rolcanlogin: boolean }>('SELECT rolcanlogin FROM pg_roles WHERE rolname = $1', [
          before.username,
        ]);
        return !t.status?.database?.retiringUsername && r.rows[0]?.rolcanlogin === false ? true : undefined;
      });
      await open.end().catch(() => undefined);
    });
  });

  describe('deletion', () => {
    it('under Retain disables the login, keeps the data, and re-creation brings it back', async () => {
      const name = tenantName('retain');
      const n = tenantNames(name);
      await applyTenant(name);
      await waitReady(name);
      const before = await secretData(`tenant-${name}`, `${name}-db`);
      const client = await connectAs(before.uri!);
      await client.query("INSERT INTO app.users (email, role) VALUES ('kept@x.example', 'owner')");
      await client.end();
      const { uid } = (
        JSON.parse(await cp.kubectl(['get', 'tenant', name, '-o', 'json'])) as { metadata: { uid: string } }
      ).metadata;

      await cp.kubectl(['delete', 'tenant', name, '--timeout=60s']);
      const db = await sql('SELECT 1 FROM pg_database WHERE datname = $1', [n.database]);
      expect(db.rowCount).to.equal(1);
      const logins = await sql<{ n: string }>(
        'SELECT count(*) AS n FROM pg_roles WHERE rolname = ANY($1) AND rolcanlogin',
        [[...n.loginRoles]],
      );
      expect(logins.rows[0]?.n).to.equal('0');
      expect((await rabbitManagement('GET', `/users/${encodeURIComponent(n.amqpUser)}`)).status).to.equal(
        404,
      );
      await eventually(
        'the namespace to go',
        async () => ((await exists(['namespace', n.namespace])) ? undefined : true),
        {
          timeoutMs: 60_000,
        },
      );

      // A new Tenant of the same name takes the retained database back only when a platform engineer says so.
      await applyTenant(name);
      await cp.kubectl(['annotate', 'tenant', name, `${restoreFromUidAnnotation}=${uid}`]);
      await waitReady(name);
      const again = await secretData(`tenant-${name}`, `${name}-db`);
      expect(again.password).to.equal(before.password);
      const back = await connectAs(again.uri!);
      const rows = await back.query<{ email: string }>('SELECT email FROM app.users');
      await back.end();
      expect(rows.rows.map((r) => r.email)).to.deep.equal(['kept@x.example']);
    });

    it('under Delete drops everything, even with open connections', async () => {
      const name = tenantName('delete');
      const n = tenantNames(name);
      await applyTenant(name, '  database: {deletionPolicy: Delete}\n');
      await waitReady(name);
      const data = await secretData(`tenant-${name}`, `${name}-db`);
      const open = [await connectAs(data.uri!), await connectAs(data.uri!)];
      await cp.kubectl(['delete', 'tenant', name, '--timeout=60s']);
      const db = await sql('SELECT 1 FROM pg_database WHERE datname = $1', [n.database]);
      expect(db.rowCount).to.equal(0);
      const roles = await sql('SELECT 1 FROM pg_roles WHERE rolname = ANY($1)', [
        [n.ownerRole, ...n.loginRoles],
      ]);
      expect(roles.rowCount).to.equal(0);
      expect((await rabbitManagement('GET', `/users/${encodeURIComponent(n.amqpUser)}`)).status).to.equal(
        404,
      );
      expect(await exists(['secret', '-n', platformNamespace, `tenant-${name}-db`])).to.be.false;
      await eventually(
        'the namespace to go',
        async () => ((await exists(['namespace', n.namespace])) ? undefined : true),
        {
          timeoutMs: 60_000,
        },
      );
      for (const c of open) await c.end().catch(() => undefined);
    });
  });

  describe('faults', () => {
    it('reports PostgreSQL unreachable, backs off, and becomes Ready when it is back', async () => {
      const name = tenantName('pgdown');
      await proxy.pause();
      try {
        await applyTenant(name);
        const failing = await eventually('the Database condition to turn False', async () => {
          const t = await getTenant(name);
          const c = condition(t, 'Database');
          return c?.status === 'False' && c.reason === 'DatabaseUnreachable' ? t : undefined;
        });
        expect(condition(failing, 'Ready')?.status).to.equal('False');
        expect(failing.status?.phase).to.equal('Provisioning');
        const warnings = await cp.kubectl([
          'get',
          'events',
          '-n',
          'default',
          '--field-selector',
          `involvedObject.name=${name},type=Warning`,
          '-o',
          'jsonpath={.items[*].reason}',
        ]);
        expect(warnings).to.contain('DatabaseUnreachable');
        // Retries back off: the failure count grows more slowly than once per resync tick.
        await new Promise((ok) => setTimeout(ok, 4000));
        const failures = operator.logs.filter(
          (l) => l.includes(`"tenant":"${name}"`) && l.includes('reconcile failed'),
        );
        const delays = failures.map((l) => Number(/"retryInMs":([\d.]+)/.exec(l)?.[1] ?? 0));
        expect(delays.length).to.be.greaterThan(1);
        expect(Math.max(...delays)).to.be.greaterThan(delays[0]!);
      } finally {
        await proxy.resume();
      }
      await waitReady(name, 90_000);
    });

    it('keeps reconciling after the API server restarts', async () => {
      await cp.restartApiServer();
      const name = tenantName('after-restart');
      await applyTenant(name);
      await waitReady(name, 90_000);
    });

    it('fails over to a standby replica when the leader is killed', async () => {
      const replicas: Record<string, OperatorProcess> = {
        'operator-a': operator,
        'operator-b': await startOperator({ ...operatorEnv, POD_NAME: 'operator-b' }),
      };
      const holder = async () =>
        (
          await cp.kubectl([
            'get',
            'lease',
            '-n',
            platformNamespace,
            operatorEnv.LEASE_NAME!,
            '-o',
            'jsonpath={.spec.holderIdentity}',
          ])
        ).trim();
      const leader = await holder();
      const standbyName = leader === 'operator-a' ? 'operator-b' : 'operator-a';
      const standby = replicas[standbyName]!;
      expect(Object.keys(replicas)).to.include(leader);
      // Only the leader reconciles.
      expect(await standby.metrics()).not.to.match(
        /tenantry_operator_reconcile_total\{result="success"\} [1-9]/,
      );
      await replicas[leader]!.kill('SIGKILL');
      const killedAt = Date.now();
      await eventually(
        `${standbyName} to take the lease`,
        async () => ((await holder()) === standbyName ? true : undefined),
        {
          timeoutMs: 20_000,
        },
      );
      // Within the lease duration (4 s) plus one retry period.
      expect(Date.now() - killedAt).to.be.lessThan(4000 + 2000);
      operator = standby;
      const name = tenantName('failover');
      await applyTenant(name);
      await waitReady(name, 90_000);
    });
  });
});
