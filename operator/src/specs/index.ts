// Pure builders from a Tenant (plus operator config) to the Kubernetes objects the
// operator applies. No I/O here, so everything is unit-tested without a cluster.

export * from './context.js';
export * from './metadata.js';
export * from './checksum.js';
export * from './namespace.js';
export * from './secrets.js';
export * from './network-policies.js';
export * from './quota.js';
export * from './worker.js';
