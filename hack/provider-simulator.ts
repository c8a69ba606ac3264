// The provider simulator for `make dev` and manual checks. Serves the three
// providers' APIs on loopback and, given a target, sends their sample events
// signed with the tenant's secret for that provider:
//
//   npx tsx hack/provider-simulator.ts                       # serve the APIs; prints their base URLs
//   SIM_TARGET=http://127.0.0.1:8080 SIM_TENANT=acme SIM_PROVIDER=user-service SIM_SECRET=whsec_... \
//     npx tsx hack/provider-simulator.ts                     # also send that provider's sample events
//
// SIM_LATENCY_MS, SIM_FAILURES and SIM_RATE_LIMITED shape every provider's API answers.
import { isProvider, providers } from '../lib/integrations/catalog.js';
import { ProviderSimulator, sampleEvents } from '../test/harness/provider-simulator.js';

const simulator = await ProviderSimulator.start();
for (const provider of providers) {
  simulator.behaviour[provider].latencyMs = Number(process.env.SIM_LATENCY_MS ?? 0);
  simulator.behaviour[provider].failures = Number(process.env.SIM_FAILURES ?? 0);
  simulator.behaviour[provider].rateLimited = Number(process.env.SIM_RATE_LIMITED ?? 0);
  console.log(`${provider} API: ${simulator.apiBaseUrl(provider)}`);
}
const { SIM_TARGET: target, SIM_TENANT: tenant, SIM_PROVIDER: provider, SIM_SECRET: secret } = process.env;
if (target && provider && secret) {
  if (!isProvider(provider)) throw new Error(`SIM_PROVIDER must be one of ${providers.join(', ')}`);
  const url = `${target}/api/integrations/webhooks/${provider}${tenant ? `/${tenant}` : ''}`;
  for (const event of sampleEvents(provider)) {
    const res = await ProviderSimulator.send(url, secret, event);
    console.log(`${event.event_type} ${event.event_id ?? ''} -> ${res.status}`);
  }
}
process.on('SIGINT', () => void simulator.close().then(() => process.exit(0)));
