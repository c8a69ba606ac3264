// The Tenant contract shared by the operator, the API, the worker, the tests,
// hack/ and bench/: the resource, its derived names, plans, roles and the
// ownership markers on what the operator creates. Import it from here.
export * from './names.js';
export * from './ownership.js';
export * from './plans.js';
export * from './resource.js';
export * from './roles.js';
