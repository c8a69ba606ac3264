// Bundles the operator into one ES module, dist/operator.mjs (run by `npm run build`
// after tsc). The operator has a hard memory budget, and most of its idle memory was
// @kubernetes/client-node's thousands of module records and their retained source:
// bundled and tree-shaken, it idles about 30 MiB lower (bench/README.md). The API and
// the worker run from tsc's output, since their native and dynamically required
// dependencies (argon2, Sequelize's dialects) do not bundle.
import { build } from 'esbuild';

await build({
  entryPoints: ['operator/src/main.ts'],
  outfile: 'dist/operator.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: true,
  // pg's optional native driver is never installed; CommonJS dependencies need `require`.
  external: ['pg-native'],
  banner: {
    js: "import { createRequire as createRequireForBundle } from 'node:module'; const require = createRequireForBundle(import.meta.url);",
  },
  logLevel: 'warning',
});
