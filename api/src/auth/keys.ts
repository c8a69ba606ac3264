// The signing key set lives in lib/ so the operator, which creates and rotates
// it, and the API, which signs and verifies with it, share one implementation.
export * from '../../../lib/signing-keys.js';
