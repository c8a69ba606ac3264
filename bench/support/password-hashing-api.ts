// The API for bench/password-hashing.bench.ts in its own process, wired like the tests' in-process API
// (test/support/api-server.ts) against the bench's control plane, with the password-hashing budget from
// BENCH_HASH_CONCURRENCY and BENCH_HASH_PER_TENANT; `trust proxy` on, so each sign-in can come from an
// address of its own. Prints `port=<n>` once it listens.
import { passwordHashing } from '../../api/src/auth/password-hashing.js';
import { startTestApi } from '../../test/harness/api-server.js';

const kubeconfig = process.env.BENCH_KUBECONFIG;
const namespace = process.env.BENCH_PLATFORM_NAMESPACE;
if (!kubeconfig || !namespace) throw new Error('BENCH_KUBECONFIG and BENCH_PLATFORM_NAMESPACE are required');
passwordHashing.configure({
  concurrency: Number(process.env.BENCH_HASH_CONCURRENCY),
  perTenant: Number(process.env.BENCH_HASH_PER_TENANT),
});
const api = await startTestApi(kubeconfig, namespace, { trustProxy: true });
process.stdout.write(`port=${new URL(api.url).port}\n`);
process.on('SIGTERM', () => void api.close().then(() => process.exit(0)));
