// Keeps the API's token signing keys in the Secret `tenantry-api-signing-keys`
// of the platform namespace: creates the key set when the Secret is missing,
// adds a new key once the newest has signed for the rotation age (published
// ahead of signing, so every replica has it first), and drops superseded keys
// once they have verified for the retirement period (lib/signing-keys.ts
// computes the set). Runs only on the leader.
//
// Every write is guarded: a create fails if the Secret appeared meanwhile, and
// a patch carries the resourceVersion it read, so a second operator (an old
// leader that has not noticed yet, or a test) can never overwrite a key that
// the other one added and API replicas may already be signing with. A lost
// race rereads and decides again.
//
// Logs and Events name key ids (public thumbprints) only, never key material.
import { PatchStrategy, setHeaderOptions, type CoreV1Api, type V1Secret } from '@kubernetes/client-node';
import type { Logger } from '../../../lib/logger.js';
import {
  currentSigningKey,
  generateSigningKey,
  parseKeySet,
  rotateKeySet,
  serializeKeySet,
  signingKeySecretKey,
  signingKeySecretLabels,
  signingKeySecretName,
  KeySetFormatError,
  type RotationPolicy,
  type SigningKey,
} from '../../../lib/signing-keys.js';
import { fieldManager } from '../../../lib/tenant/index.js';
import { describeKubeError, isConflict, isNotFound } from '../kube/cluster.js';

export interface SigningKeyRotationOptions {
  core: CoreV1Api;
  namespace: string;
  policy: RotationPolicy;
  /** How often the Secret is checked. */
  intervalMs: number;
  log: Logger;
  /** Reported as the Event's reporting instance. */
  identity: string;
  now?: () => Date;
  generate?: (now: Date) => SigningKey;
  /** Called with the key set after each successful check; for metrics. */
  onChecked?: (keys: readonly SigningKey[]) => void;
}

export interface RotationOutcome {
  /** created: a new Secret; rotated: a new key added; retired: only old keys dropped. */
  action: 'created' | 'rotated' | 'retired' | 'unchanged';
  /** Key ids in the Secret afterwards, oldest first. */
  kids: string[];
  /** The key that signs now. */
  current: string;
}

const maxAttempts = 5;

export class SigningKeyRotation {
  private readonly now: () => Date;
  private readonly generate: (now: Date) => SigningKey;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: SigningKeyRotationOptions) {
    this.now = options.now ?? (() => new Date());
    this.generate = options.generate ?? generateSigningKey;
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
      });
    }, delayMs);
  }

  private async tick(): Promise<void> {
    try {
      await this.ensureOnce();
    } catch (error) {
      const err = error instanceof KeySetFormatError ? error.message : describeKubeError(error);
      this.options.log.error(
        { err, object: `${this.options.namespace}/${signingKeySecretName}` },
        'could not check the API signing keys',
      );
    } finally {
      this.schedule(this.options.intervalMs);
    }
  }

  /**
   * One check: create, rotate or retire as the policy says. Retries a lost
   * write race a few times. A Secret whose key set cannot be read is left
   * alone (KeySetFormatError): replacing it would drop keys that sign live tokens.
   */
  async ensureOnce(): Promise<RotationOutcome> {
    const { core, namespace, policy } = this.options;
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      const secret = await this.read();
      const now = this.now();
      if (!secret) {
        const keys = rotateKeySet([], now, policy, this.generate);
        try {
          await core.createNamespacedSecret({
            namespace,
            body: {
              apiVersion: 'v1',
              kind: 'Secret',
              metadata: { name: signingKeySecretName, namespace, labels: { ...signingKeySecretLabels } },
              type: 'Opaque',
              data: { [signingKeySecretKey]: encode(serializeKeySet(keys)) },
            },
          });
        } catch (error) {
          if (isConflict(error)) continue; // created by someone else meanwhile
          throw error;
        }
        this.options.onChecked?.(keys);
        return this.report('created', [], keys, now);
      }

      const stored = secret.data?.[signingKeySecretKey];
      if (stored === undefined) {
        throw new KeySetFormatError(`the Secret has no ${signingKeySecretKey} entry`);
      }
      const before = parseKeySet(Buffer.from(stored, 'base64').toString('utf8'));
      const after = rotateKeySet(before, now, policy, this.generate);
      const labelled = Object.entries(signingKeySecretLabels).every(
        ([k, v]) => secret.metadata?.labels?.[k] === v,
      );
      if (serializeKeySet(after) === serializeKeySet(before) && labelled) {
        this.options.onChecked?.(after);
        return outcome('unchanged', after, now);
      }
      try {
        // A merge patch that names the resourceVersion read above: the API server refuses
        // it with 409 if anything changed since (needs only get and patch).
        await core.patchNamespacedSecret(
          {
            name: signingKeySecretName,
            namespace,
            body: {
              metadata: {
                resourceVersion: secret.metadata?.resourceVersion,
                labels: { ...signingKeySecretLabels },
              },
              data: { [signingKeySecretKey]: encode(serializeKeySet(after)) },
            },
            fieldManager,
          },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
      } catch (error) {
        if (isConflict(error)) continue;
        throw error;
      }
      const added = after.some((k) => !before.some((b) => b.kid === k.kid));
      this.options.onChecked?.(after);
      return this.report(
        added ? 'rotated' : after.length === before.length ? 'unchanged' : 'retired',
        before,
        after,
        now,
        secret,
      );
    }
    throw new Error(`the signing key Secret kept changing under ${maxAttempts} attempts; will retry`);
  }

  private async read(): Promise<V1Secret | undefined> {
    try {
      return await this.options.core.readNamespacedSecret({
        name: signingKeySecretName,
        namespace: this.options.namespace,
      });
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  private report(
    action: RotationOutcome['action'],
    before: readonly SigningKey[],
    after: readonly SigningKey[],
    now: Date,
    secret?: V1Secret,
  ): RotationOutcome {
    const result = outcome(action, after, now);
    const kept = new Set(after.map((k) => k.kid));
    const retired = before.filter((k) => !kept.has(k.kid)).map((k) => k.kid);
    const previous = before.length > 0 ? currentSigningKey(before, now) : undefined;
    // Not `secret`: the logger redacts that key.
    const object = `${this.options.namespace}/${signingKeySecretName}`;
    if (action === 'created') {
      this.options.log.info({ object, current: result.current }, 'created the API signing keys');
    } else if (action === 'rotated') {
      const until = after.find((k) => k.kid === previous?.kid)?.notAfter?.toISOString();
      // rotateKeySet appends the key it adds.
      const added = after.at(-1)!;
      const signsFrom = (added.notBefore ?? now).toISOString();
      this.options.log.info(
        { object, added: added.kid, signsFrom, previous: previous?.kid, verifiesUntil: until, retired },
        'rotated the API signing key',
      );
      this.event(
        secret,
        'SigningKeyRotated',
        `key ${added.kid} is published and signs API tokens from ${signsFrom}; ${previous?.kid ?? 'the previous key'} signs until then and verifies until ${until ?? 'its retirement'}`,
      );
    } else if (action === 'retired') {
      this.options.log.info({ object, retired }, 'retired superseded API signing keys');
    }
    return result;
  }

  /** Best effort: an Event on the Secret, visible with `kubectl describe secret`. */
  private event(secret: V1Secret | undefined, reason: string, message: string): void {
    const { core, namespace, identity, log } = this.options;
    const now = new Date();
    void core
      .createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${signingKeySecretName}.`, namespace },
          involvedObject: {
            apiVersion: 'v1',
            kind: 'Secret',
            name: signingKeySecretName,
            namespace,
            ...(secret?.metadata?.uid ? { uid: secret.metadata.uid } : {}),
          },
          type: 'Normal',
          reason,
          message,
          count: 1,
          firstTimestamp: now,
          lastTimestamp: now,
          source: { component: 'tenantry-operator' },
          reportingComponent: 'tenantry-operator',
          reportingInstance: identity,
        },
      })
      .catch((error: unknown) =>
        log.warn({ err: describeKubeError(error), reason }, 'could not record event'),
      );
  }
}

function outcome(action: RotationOutcome['action'], keys: readonly SigningKey[], now: Date): RotationOutcome {
  return { action, kids: keys.map((k) => k.kid), current: currentSigningKey(keys, now).kid };
}

function encode(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}
