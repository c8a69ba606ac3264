// The API for bench/integrations.bench.ts in its own process, wired like the
// tests' in-process API (test/support/api-server.ts) against the bench's
// control plane; prints `port=<n>` once it listens.
import { startTestApi } from '../../test/harness/api-server.js';

const kubeconfig = process.env.BENCH_KUBECONFIG;
const namespace = process.env.BENCH_PLATFORM_NAMESPACE;
if (!kubeconfig || !namespace) throw new Error('BENCH_KUBECONFIG and BENCH_PLATFORM_NAMESPACE are required');
const api = await startTestApi(kubeconfig, namespace);
process.stdout.write(`port=${new URL(api.url).port}\n`);
process.on('SIGTERM', () => void api.close().then(() => process.exit(0)));
