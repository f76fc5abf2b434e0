// Transitional: CIDRs live in src/api/ipv4.ts. Only src/gateway/dataplane.ts still imports gatewayMac from here;
// delete this file once it imports from api.
export { gatewayMac } from '../api/ipv4.js';
