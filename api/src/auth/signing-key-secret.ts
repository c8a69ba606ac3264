// The signing key set read from the operator's Secret `tenantry-api-signing-keys`
// in the platform namespace and kept current by watching it, so a rotation
// reaches every replica without a restart. Used when JWT_KEYS_FILE is unset.
//
// Until a usable key set has arrived the API is not ready (check()). A Secret
// that disappears or turns unreadable later does not empty the set: the keys
// already loaded keep signing and verifying until a good set replaces them.
import { CoreV1Api, Watch, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { ListWatch, pageOf, pageQuery, type ListWatchSource } from '../../../lib/kube/list-watch.js';
import type { Logger } from '../../../lib/logger.js';
import {
  InMemoryKeySetSource,
  KeySetFormatError,
  parseKeySet,
  signingKeySecretKey,
  signingKeySecretName,
} from '../../../lib/signing-keys.js';

export interface DependencyCheck {
  ok: boolean;
  detail?: string;
}

export class SigningKeySecret {
  /** The key set to hand to the TokenService and the JWKS route. */
  readonly keys = new InMemoryKeySetSource();
  private readonly watch: ListWatch<V1Secret>;
  private loaded = false;
  private problem: string;
  private version = '';

  constructor(
    kubeConfig: KubeConfig,
    private readonly namespace: string,
    private readonly log: Logger,
    options: { resyncMs: number },
  ) {
    this.problem = `waiting for Secret ${namespace}/${signingKeySecretName}`;
    const core = kubeConfig.makeApiClient(CoreV1Api);
    const watcher = new Watch(kubeConfig);
    const fieldSelector = `metadata.name=${signingKeySecretName}`;
    const source: ListWatchSource<V1Secret> = {
      list: async (page) =>
        pageOf(await core.listNamespacedSecret({ namespace, fieldSelector, ...pageQuery(page) })),
      watch: (resourceVersion, onEvent, done) =>
        watcher.watch(
          `/api/v1/namespaces/${namespace}/secrets`,
          { resourceVersion, fieldSelector, allowWatchBookmarks: true },
          (type, object) => onEvent(type as never, object as V1Secret),
          done,
        ),
    };
    this.watch = new ListWatch(
      'signing-keys',
      source,
      {
        onList: (items) => {
          const secret = items[0];
          if (secret) this.take(secret);
          else this.missing();
        },
        onEvent: (type, secret) => {
          if (type === 'DELETED') this.missing();
          else this.take(secret);
        },
      },
      log,
      options,
    );
  }

  start(): void {
    this.watch.start();
  }

  stop(): Promise<void> {
    return this.watch.stop();
  }

  /** For /readyz and /health: ready once a key set was loaded; the detail says what is missing. */
  check(): DependencyCheck {
    if (this.loaded) return { ok: true };
    return {
      ok: false,
      detail: `no signing keys: JWT_KEYS_FILE is not set and ${this.problem} (the operator creates it)`,
    };
  }

  private take(secret: V1Secret): void {
    const version = secret.metadata?.resourceVersion ?? '';
    if (this.loaded && version !== '' && version === this.version) return;
    const stored = secret.data?.[signingKeySecretKey];
    try {
      if (stored === undefined) throw new KeySetFormatError(`the Secret has no ${signingKeySecretKey} entry`);
      const keys = parseKeySet(Buffer.from(stored, 'base64').toString('utf8'));
      if (keys.length === 0) throw new KeySetFormatError('the key set is empty');
      this.keys.replace(keys);
      this.version = version;
      if (this.loaded) this.log.info({ kids: keys.map((k) => k.kid) }, 'reloaded the signing keys');
      else this.log.info({ kids: keys.map((k) => k.kid) }, 'loaded the signing keys');
      this.loaded = true;
    } catch (error) {
      // KeySetFormatError messages name members and indexes only, never key material.
      const reason = error instanceof KeySetFormatError ? error.message : 'unreadable';
      this.problem = `Secret ${this.namespace}/${signingKeySecretName} cannot be used (${reason})`;
      this.log.error(
        { reason },
        this.loaded
          ? 'the signing key Secret cannot be used; keeping the previous keys'
          : 'the signing key Secret cannot be used',
      );
    }
  }

  private missing(): void {
    this.problem = `Secret ${this.namespace}/${signingKeySecretName} does not exist`;
    if (this.loaded) this.log.warn('the signing key Secret is gone; keeping the keys already loaded');
  }
}
