// The kernel-facing constants every egw process agrees on (docs/dataplane.md, "What each part owns"). One home each:
// calc puts them in its desired state, the node and gateway data planes program them, explain prints them.

/** The VXLAN device on a client node and in a gateway pod. */
export const VXLAN_DEVICE = 'egw.vxlan';
/** VXLAN over IPv4 costs 50 bytes: outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const VXLAN_OVERHEAD = 50;
/** TCP MSS = MTU − IPv4 header (20) − TCP header (20). */
export const TCP_IP_HEADERS = 40;
/** A gateway pod's uplink (the pod's own interface). */
export const GATEWAY_UPLINK = 'eth0';
/** Routing-table IDs of the shared client tables egw owns on a node: [TABLE_ID_BASE, TABLE_ID_BASE + TABLE_ID_RANGE). */
export const TABLE_ID_BASE = 1000;
export const TABLE_ID_RANGE = 2 ** 20;
/** A gateway pod's health port (HTTP /readiness, /liveness; UDP heartbeats), named `health` as Calico's are. */
export const GATEWAY_HEALTH_PORT = 8080;
export const GATEWAY_HEALTH_PORT_NAME = 'health';
