// IP address management: which pools a pod may use (poolsForPod) and Calico-style block allocation in the
// datastore (Ipam). See docs/dataplane.md, "Resources and annotations the processes exchange".
export { Ipam, DEFAULT_BLOCK_SIZE, type IpamOptions, type Allocation, type ReleaseOptions } from './ipam.js';
export { poolsForPod, findPool, poolAllows, poolSelectsNode, isIPv4Pool } from './pools.js';
export {
  IpamError,
  blockName,
  nodeAffinity,
  podHandle,
  parsePodHandle,
  IPAM_BLOCK_KIND,
  IPAM_BLOCK_API_VERSION,
  type IpamErrorCode,
  type IPAMBlock,
  type IPAMBlockSpec,
} from './types.js';
