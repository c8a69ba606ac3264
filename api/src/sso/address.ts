// The outbound address policy is shared with webhook delivery; it lives in lib/.
export {
  guardedFetch,
  isPublicAddress,
  OutboundRefused,
  lookupHost,
  outboundRefusal,
  type OutboundPolicy,
  type ResolveHost,
} from '../../../lib/outbound-address.js';
