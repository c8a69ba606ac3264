// The repository's root, for tests and tools that read its files (charts, CRDs, bundles).
import { resolve } from 'node:path';

export const repoRoot = resolve(import.meta.dirname, '../..');
