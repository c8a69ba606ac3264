// The API's signing keys as the operator keeps them: the real operator creates
// and rotates the Secret on a short test schedule, the API watches it and picks
// up rotations without a restart, and two writers racing on the Secret never
// lose a key.
import { CoreV1Api } from '@kubernetes/client-node';
import { expect } from 'chai';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { createLogger } from '../../../lib/logger.js';
import { loadKubeConfig } from '../../../lib/kube/kube-config.js';
import {
  currentSigningKey,
  generateSigningKey,
  parseKeySet,
  serializeKeySet,
  signingKeySecretKey,
  signingKeySecretName,
  type SigningKey,
} from '../../../lib/signing-keys.js';
import {
  SigningKeyRotation,
  type RotationOutcome,
} from '../../../operator/src/controller/signing-key-rotation.js';
import { platformAdminClient, startTestApi, type TestApi } from '../../harness/api-server.js';
import { startTestPlatform, type TestPlatform } from '../../harness/platform.js';
import { uniqueSuffix } from '../../harness/services.js';
import { eventually } from '../../harness/wait.js';

// The operator's test schedule: a new key every 8 s of signing, published 3 s before it signs; the
// previous one verifies 5 s more.
const rotateSeconds = 8;
const retireSeconds = 5;
const publishAheadSeconds = 3;

interface SecretObject {
  metadata: { labels?: Record<string, string>; resourceVersion: string };
  data?: Record<string, string>;
}

describe('API signing keys managed by the operator', function () {
  this.timeout(180_000);
  let platform: TestPlatform;
  const apis: TestApi[] = [];
  const namespaces: string[] = [];

  const readSecret = async (namespace: string): Promise<SecretObject | undefined> => {
    const out = await platform.cp
      .kubectl(['get', 'secret', signingKeySecretName, '-n', namespace, '-o', 'json', '--ignore-not-found'])
      .catch(() => '');
    return out.trim() ? (JSON.parse(out) as SecretObject) : undefined;
  };
  const keysIn = (secret: SecretObject): SigningKey[] =>
    parseKeySet(Buffer.from(secret.data?.[signingKeySecretKey] ?? '', 'base64').toString('utf8'));
  const newNamespace = async (label: string) => {
    const name = `sigkeys-${label}-${uniqueSuffix().slice(-6)}`;
    await platform.cp.kubectl(['create', 'namespace', name]);
    namespaces.push(name);
    return name;
  };
  const startApi = async (namespace: string) => {
    const api = await startTestApi(platform.cp.kubeconfigPath, namespace, { signingKeysFromSecret: true });
    apis.push(api);
    return api;
  };
  const adminToken = async (api: TestApi) => {
    const res = await api.call('POST', '/api/auth/token', {
      body: {
        grant_type: 'client_credentials',
        client_id: platformAdminClient.clientId,
        client_secret: platformAdminClient.clientSecret,
      },
    });
    return res;
  };
  const kidOf = (token: string) => decodeProtectedHeader(token).kid!;
  const publishedKids = async (api: TestApi) =>
    ((await api.call('GET', '/.well-known/jwks.json')).body as { keys: { kid: string }[] }).keys.map(
      (k) => k.kid,
    );

  before(async () => {
    platform = await startTestPlatform('sigkeys', {
      SIGNING_KEY_ROTATION_DAYS: String(rotateSeconds / 86_400),
      SIGNING_KEY_RETIRE_AFTER_HOURS: String(retireSeconds / 3600),
      SIGNING_KEY_CHECK_SECONDS: '1',
      SIGNING_KEY_PUBLISH_AHEAD_SECONDS: String(publishAheadSeconds),
    });
  });

  after(async () => {
    for (const api of apis) await api.close();
    for (const ns of namespaces)
      await platform?.cp.kubectl(['delete', 'namespace', ns, '--wait=false']).catch(() => undefined);
    await platform?.cleanup();
  });

  it('creates the labelled Secret with a usable key set, and never logs key material', async () => {
    const secret = await eventually('the signing key Secret', () => readSecret(platform.platformNamespace));
    expect(secret.metadata.labels).to.include({
      'app.kubernetes.io/managed-by': 'tenantry-operator',
      'tenantry.io/secret-kind': 'signing-keys',
    });
    const keys = keysIn(secret);
    expect(keys.length).to.be.at.least(1);
    const logs = await eventually('the creation to be logged', () => {
      const text = platform.operator.logs.join('\n');
      return Promise.resolve(text.includes('created the API signing keys') ? text : undefined);
    });
    expect(logs).to.contain(`"object":"${platform.platformNamespace}/${signingKeySecretName}"`);
    for (const key of keys) expect(logs).not.to.contain(key.privateJwk.d);
  });

  it('keeps the API unready until the Secret exists, then serves with its keys', async () => {
    const namespace = await newNamespace('late');
    const api = await startApi(namespace);
    const unready = await api.call('GET', '/readyz');
    expect(unready.status).to.equal(503);
    expect(unready.body.checks.signing_keys.ok).to.equal(false);
    expect(unready.body.checks.signing_keys.detail).to.contain(`${namespace}/${signingKeySecretName}`);
    expect(unready.body.checks.signing_keys.detail).to.contain('does not exist');
    // No key, no token: a clear 503, not a 500.
    const noToken = await adminToken(api);
    expect(noToken.status).to.equal(503);
    expect(noToken.headers.get('content-type')).to.contain('application/problem+json');

    const key = generateSigningKey(new Date());
    await platform.cp.kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: signingKeySecretName, namespace },
        data: { [signingKeySecretKey]: Buffer.from(serializeKeySet([key])).toString('base64') },
      }),
    );
    await eventually('the API to become ready', async () =>
      (await api.call('GET', '/readyz')).status === 200 ? true : undefined,
    );
    const issued = await adminToken(api);
    expect(issued.status).to.equal(200);
    expect(kidOf(issued.body.access_token as string)).to.equal(key.kid);
  });

  it('rotates: the API publishes the new key before signing with it, verifies the old one until it retires, then rejects it', async () => {
    const api = await startApi(platform.platformNamespace);
    await eventually('the API to load the keys', async () =>
      (await api.call('GET', '/readyz')).status === 200 ? true : undefined,
    );
    const first = await adminToken(api);
    expect(first.status).to.equal(200);
    const oldToken = first.body.access_token as string;
    const oldKid = kidOf(oldToken);

    // A rotation reaches the running API: a new key is published first, the old one still with it.
    const newKid = await eventually(
      'a rotation to reach the API',
      async () => {
        const kids = await publishedKids(api);
        return kids[0] !== oldKid && kids.includes(oldKid) ? kids[0] : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    const publishedAt = Date.now();
    const stored = keysIn((await readSecret(platform.platformNamespace))!);
    const added = stored.find((k) => k.kid === newKid)!;
    const signsFrom = added.notBefore!.getTime();
    expect(signsFrom - added.createdAt.getTime()).to.equal(publishAheadSeconds * 1000);
    // The API had the key before any token could carry it.
    expect(publishedAt).to.be.below(signsFrom);
    const previous = stored.find((k) => k.kid === oldKid);
    // Kept for verification for the retirement period after the new key takes over, not forever.
    expect(previous?.notAfter?.getTime()).to.equal(signsFrom + retireSeconds * 1000);

    // No token carries the new key before its notBefore (iat is in whole seconds), and one does after.
    let newToken: string | undefined;
    const deadline = Date.now() + 30_000;
    while (newToken === undefined) {
      const issued = await adminToken(api);
      expect(issued.status).to.equal(200);
      const token = issued.body.access_token as string;
      const iatMs = (decodeJwt(token).iat ?? 0) * 1000;
      if (kidOf(token) === oldKid) {
        expect(iatMs).to.be.below(signsFrom);
        expect(Date.now(), 'a token signed with the new key in time').to.be.below(deadline);
        await new Promise((ok) => setTimeout(ok, 200));
      } else {
        expect(kidOf(token)).to.equal(newKid);
        expect(iatMs).to.be.at.least(signsFrom - 1000);
        newToken = token;
      }
    }
    expect((await api.call('GET', '/api/tenants', { token: oldToken })).status).to.equal(200);
    expect((await api.call('GET', '/api/tenants', { token: newToken })).status).to.equal(200);
    expect(currentSigningKey(stored, new Date()).kid).to.equal(newKid);

    await eventually(
      'the old key to retire',
      async () => (!(await publishedKids(api)).includes(oldKid) ? true : undefined),
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    const rejected = await api.call('GET', '/api/tenants', { token: oldToken });
    expect(rejected.status).to.equal(401);

    const events = JSON.parse(
      await platform.cp.kubectl([
        'get',
        'events',
        '-n',
        platform.platformNamespace,
        '--field-selector',
        'reason=SigningKeyRotated',
        '-o',
        'json',
      ]),
    ) as { items: { message: string; involvedObject: { name: string } }[] };
    expect(events.items.length).to.be.at.least(1);
    expect(events.items[0]!.involvedObject.name).to.equal(signingKeySecretName);
    expect(events.items[0]!.message).to.match(/is published and signs API tokens from \S+Z; /);
    const text = JSON.stringify(events.items) + platform.operator.logs.join('\n');
    for (const key of stored) expect(text).not.to.contain(key.privateJwk.d);
  });

  it('never loses a key when two writers race on the Secret', async () => {
    const namespace = await newNamespace('race');
    const core = loadKubeConfig(platform.cp.kubeconfigPath).makeApiClient(CoreV1Api);
    const log = createLogger('signing-keys-test', 'silent');
    const day = 86_400_000;
    let clock = Date.now();

    // While armed, a writer's read of the Secret waits until the other writer has read it too,
    // so both decide on the same version and one of the two writes has to lose.
    let arrived: (() => void)[] = [];
    const bothRead = () =>
      new Promise<void>((ok) => {
        arrived.push(ok);
        if (arrived.length === 2) {
          for (const go of arrived) go();
          arrived = [];
        }
      });
    const writer = () => {
      const state = { armed: false };
      const racing = Object.create(core) as CoreV1Api;
      racing.readNamespacedSecret = async (params) => {
        const read = core.readNamespacedSecret(params);
        await read.catch(() => undefined);
        if (state.armed) {
          state.armed = false;
          await bothRead();
        }
        return read;
      };
      const rotation = new SigningKeyRotation({
        core: racing,
        namespace,
        policy: { rotateAfterMs: 30 * day, retireAfterMs: day, publishAheadMs: 0 },
        intervalMs: 60_000,
        log,
        identity: 'test',
        now: () => new Date(clock),
      });
      return { state, rotation };
    };
    const writers = [writer(), writer()];
    const race = async (): Promise<RotationOutcome[]> => {
      for (const w of writers) w.state.armed = true;
      return Promise.all(writers.map((w) => w.rotation.ensureOnce()));
    };
    const stored = async () => keysIn((await readSecret(namespace))!);

    const created = await race();
    expect(created.map((o) => o.action).sort()).to.deep.equal(['created', 'unchanged']);
    let keys = await stored();
    expect(keys.map((k) => k.kid)).to.deep.equal([created[0]!.current]);
    expect(created[1]!.current).to.equal(created[0]!.current);

    for (let round = 0; round < 3; round++) {
      const before = currentSigningKey(keys, new Date(clock)).kid;
      clock += 31 * day;
      const outcomes = await race();
      // Exactly one writer's new key landed; the other saw it and left it alone.
      expect(outcomes.map((o) => o.action).sort()).to.deep.equal(['rotated', 'unchanged']);
      const winner = outcomes.find((o) => o.action === 'rotated')!;
      expect(outcomes.every((o) => o.current === winner.current)).to.equal(true);
      keys = await stored();
      expect(keys.map((k) => k.kid)).to.deep.equal([before, winner.current]);
      expect(keys[0]!.notAfter?.getTime()).to.equal(clock + day);
    }
  });
});
