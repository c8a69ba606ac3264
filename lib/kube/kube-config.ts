// A KubeConfig whose requests share one connection pool. @kubernetes/client-node
// 2.x builds a new undici Agent for every request, so each call opens its own
// TLS connection and the idle ones linger until the keep-alive timeout: an
// operator with a thousand tenants held hundreds of sockets and their buffers.
// Here the Agent is built once per TLS identity (CA, client certificate and
// key) and reused; a changed identity (a rotated client certificate) replaces
// it, and the old one is closed once its requests have finished.
import { createHash } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';

interface Closable {
  close(): Promise<void>;
}

/** The two methods of KubeConfig this wraps; `createDispatcher` is private in its typings. */
interface DispatcherFactory {
  createDispatcherOptions(cluster: unknown, agentOptions: unknown): unknown;
  createDispatcher(cluster: unknown, agentOptions: unknown): Closable | undefined;
}

/** Makes every request made through `kubeConfig` reuse one connection pool. Returns the same object. */
export function shareConnections(kubeConfig: KubeConfig): KubeConfig {
  const factory = kubeConfig as unknown as DispatcherFactory;
  const build = factory.createDispatcher.bind(kubeConfig);
  let cached: { key: string; dispatcher: Closable | undefined } | undefined;
  factory.createDispatcher = (cluster, agentOptions) => {
    const options = factory.createDispatcherOptions(cluster, agentOptions);
    const key = createHash('sha256').update(JSON.stringify(options)).digest('base64');
    if (cached?.key !== key) {
      const previous = cached?.dispatcher;
      cached = { key, dispatcher: build(cluster, agentOptions) };
      previous?.close().catch(() => undefined);
    }
    return cached.dispatcher;
  };
  return kubeConfig;
}

/** Loads a kubeconfig (a file, or the default chain: KUBECONFIG, in-cluster, ~/.kube) with shared connections. */
export function loadKubeConfig(file?: string): KubeConfig {
  const kubeConfig = new KubeConfig();
  if (file) kubeConfig.loadFromFile(file);
  else kubeConfig.loadFromDefault();
  return shareConnections(kubeConfig);
}
