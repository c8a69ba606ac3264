// The outbound address policy is shared with webhook delivery; it lives in lib/.
export {
  isPublicAddress,
  lookupHost,
  outboundRefusal,
  type OutboundPolicy,
  type ResolveHost,
} from '../../../lib/outbound-address.js';
