// Operator configuration the builders need; the composition root fills it from
// validated config, so nothing here reads the environment.

export interface BuildContext {
  /** Namespace the operator and the API run in. */
  platformNamespace: string;
  /** Namespace of the Secrets the API reads: the platform copies of tenant Secrets, among others. */
  secretsNamespace: string;
  workerImage: string;
  /**
   * OTEL_* variables the worker containers get (docs/tracing.md): the operator's own,
   * less OTEL_SERVICE_NAME. Sorted by name, so the pod template stays the same from run to run.
   */
  workerTelemetryEnv?: { name: string; value: string }[];
  /** Where tenant workers reach PostgreSQL; cidrs narrow the egress NetworkPolicy. */
  postgres: { host: string; port: number; cidrs?: string[] };
  /** Where tenant workers reach RabbitMQ; cidrs narrow the egress NetworkPolicy. */
  rabbitmq: { host: string; port: number; cidrs?: string[] };
  /**
   * Namespaces (by name) whose pods may scrape the worker's metrics port, such as Prometheus's;
   * default none beyond the platform namespace.
   */
  metricsScrapeNamespaces?: string[];
  /** Namespace of the cluster DNS; defaults to kube-system. */
  dnsNamespace?: string;
}

export const defaultDnsNamespace = 'kube-system';
