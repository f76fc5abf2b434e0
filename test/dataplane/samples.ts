// Real output of the kernel tools, captured on this machine (kernel 6.18, iproute2 6.1, nftables 1.0.6) inside a
// network namespace holding a node end of a veth pair (172.31.99.11/24 on eth0), an egw.vxlan device, egw rules,
// tables, neighbours and FDB entries, plus hand-made strays (a fwmark rule and an unreachable rule at priority 100,
// a proto-static route with a metric and a route with an mtu in table 1003, a route in table 77, a neighbour and an
// FDB entry with port/vni nobody wants). Used by the parser and planner unit tests.

/** `ip -N -4 -json rule list` */
export const RULES = String.raw`[{"priority":0,"src":"all","table":"255"},{"priority":100,"src":"10.244.0.5","table":"1001"},{"priority":100,"src":"10.244.0.6","table":"1002"},{"priority":100,"src":"10.244.0.7","table":"1001"},{"priority":100,"src":"10.244.1.0","srclen":24,"fwmark":"0x10","fwmask":"0xff","iif":"eth0","table":"254"},{"priority":100,"src":"10.9.9.9","action":"7"},{"priority":5000,"src":"all","table":"1005"},{"priority":32766,"src":"all","table":"254"},{"priority":32767,"src":"all","table":"253"}]`;

/** `ip -N -4 -json route show table all` */
export const ROUTES = String.raw`[{"dst":"5.5.5.0/24","gateway":"172.31.99.1","dev":"eth0","table":"77","flags":[]},{"dst":"default","table":"1001","flags":[],"nexthops":[{"gateway":"10.10.0.2","dev":"egw.vxlan","weight":1,"flags":["onlink"]},{"gateway":"10.10.0.3","dev":"egw.vxlan","weight":1,"flags":["onlink"]}]},{"type":"9","dst":"10.244.0.0/16","table":"1001","flags":[]},{"dst":"default","gateway":"10.10.0.2","dev":"egw.vxlan","table":"1002","flags":["onlink"]},{"type":"7","dst":"8.8.0.0/16","table":"1002","flags":[]},{"type":"9","dst":"10.244.0.0/16","table":"1002","flags":[]},{"dst":"1.2.3.0/24","dev":"eth0","table":"1003","scope":"253","flags":[],"metrics":[{"mtu":1400}]},{"dst":"1.2.3.4","gateway":"10.10.0.2","dev":"egw.vxlan","table":"1003","protocol":"4","metric":5,"flags":["onlink"]},{"dst":"172.31.99.0/24","dev":"eth0","protocol":"2","scope":"253","prefsrc":"172.31.99.11","flags":[]},{"type":"2","dst":"127.0.0.0/8","dev":"lo","table":"255","protocol":"2","scope":"254","prefsrc":"127.0.0.1","flags":[]},{"type":"2","dst":"127.0.0.1","dev":"lo","table":"255","protocol":"2","scope":"254","prefsrc":"127.0.0.1","flags":[]},{"type":"3","dst":"127.255.255.255","dev":"lo","table":"255","protocol":"2","scope":"253","prefsrc":"127.0.0.1","flags":[]},{"type":"2","dst":"172.31.99.11","dev":"eth0","table":"255","protocol":"2","scope":"254","prefsrc":"172.31.99.11","flags":[]},{"type":"3","dst":"172.31.99.255","dev":"eth0","table":"255","protocol":"2","scope":"253","prefsrc":"172.31.99.11","flags":[]}]`;

/** `ip -d -json addr show dev egw.vxlan` */
export const LINK = String.raw`[{"ifindex":3,"ifname":"egw.vxlan","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1450,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"link_type":"ether","address":"8a:c0:ca:e4:8d:a5","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,"min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"vxlan","info_data":{"id":4097,"local":"172.31.99.11","port_range":{"low":0,"high":0},"port":4790,"learning":false,"ttl":0,"df":"unset","ageing":300,"udp_csum":true,"udp_zero_csum6_tx":false,"udp_zero_csum6_rx":false}},"num_tx_queues":1,"num_rx_queues":1,"gso_max_size":65536,"gso_max_segs":65535,"tso_max_size":65536,"tso_max_segs":65535,"gro_max_size":65536,"addr_info":[{"family":"inet6","local":"fe80::88c0:caff:fee4:8da5","prefixlen":64,"scope":"link","valid_life_time":4294967295,"preferred_life_time":4294967295}]}]`;

/** `ip -d -json addr show dev t2`: a vxlan with learning, a remote, an IPv4 address, down */
export const LINK_LEARNING_REMOTE_ADDR = String.raw`[{"ifindex":5,"ifname":"t2","flags":["BROADCAST","MULTICAST"],"mtu":1400,"qdisc":"noop","operstate":"DOWN","group":"default","txqlen":1000,"link_type":"ether","address":"8e:ef:20:de:b2:20","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,"min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"vxlan","info_data":{"id":7,"remote":"172.31.99.1","local":"172.31.99.11","port_range":{"low":0,"high":0},"port":4789,"learning":true,"ttl":0,"df":"unset","ageing":300,"udp_csum":true,"udp_zero_csum6_tx":false,"udp_zero_csum6_rx":false}},"num_tx_queues":1,"num_rx_queues":1,"gso_max_size":65536,"gso_max_segs":65535,"tso_max_size":65536,"tso_max_segs":65535,"gro_max_size":65536,"addr_info":[{"family":"inet","local":"192.0.2.1","prefixlen":24,"scope":"global","label":"t2","valid_life_time":4294967295,"preferred_life_time":4294967295}]}]`;

/** `ip -d -json addr show dev t3`: a veth */
export const LINK_VETH = String.raw`[{"ifindex":7,"link":"t4","ifname":"t3","flags":["BROADCAST","MULTICAST","M-DOWN"],"mtu":1500,"qdisc":"noop","operstate":"DOWN","group":"default","txqlen":1000,"link_type":"ether","address":"9e:78:62:4c:55:e3","broadcast":"ff:ff:ff:ff:ff:ff","promiscuity":0,"allmulti":0,"min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"veth"},"num_tx_queues":2,"num_rx_queues":2,"gso_max_size":65536,"gso_max_segs":65535,"tso_max_size":524280,"tso_max_segs":65535,"gro_max_size":65536,"addr_info":[]}]`;

/** `ip -4 -json neigh show dev egw.vxlan` */
export const NEIGH = String.raw`[{"dst":"10.10.0.9","lladdr":"a2:2a:0a:0a:00:09","state":["PERMANENT"]},{"dst":"10.10.0.3","lladdr":"a2:2a:0a:0a:00:03","state":["PERMANENT"]},{"dst":"10.10.0.2","lladdr":"a2:2a:0a:0a:00:02","state":["PERMANENT"]}]`;

/** `bridge -json fdb show dev egw.vxlan` */
export const FDB = String.raw`[{"mac":"00:00:00:00:00:00","dst":"10.10.0.99","port":4789,"vni":7,"flags":["self"],"state":"permanent"},{"mac":"a2:2a:0a:0a:00:03","dst":"10.10.0.3","flags":["self"],"state":"permanent"},{"mac":"a2:2a:0a:0a:00:02","dst":"10.10.0.2","flags":["self"],"state":"permanent"}]`;

/** `nft -j list table ip egw` */
export const NFT = String.raw`{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "ip", "name": "egw", "handle": 2}}, {"chain": {"family": "ip", "table": "egw", "name": "postrouting", "handle": 1, "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}, {"chain": {"family": "ip", "table": "egw", "name": "forward", "handle": 2, "type": "filter", "hook": "forward", "prio": -150, "policy": "accept"}}, {"chain": {"family": "ip", "table": "egw", "name": "tunnel_prerouting", "handle": 3, "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}}, {"chain": {"family": "ip", "table": "egw", "name": "tunnel_output", "handle": 4, "type": "filter", "hook": "output", "prio": -300, "policy": "accept"}}, {"rule": {"family": "ip", "table": "egw", "chain": "postrouting", "handle": 5, "comment": "egress-pool sources are never SNATed", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "10.10.0.0", "len": 24}}}}, {"return": null}]}}, {"rule": {"family": "ip", "table": "egw", "chain": "postrouting", "handle": 7, "comment": "natOutgoing", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "eth0"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "10.244.0.0", "len": 16}}}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"set": [{"prefix": {"addr": "10.10.0.0", "len": 24}}, {"prefix": {"addr": "10.244.0.0", "len": 16}}]}}}, {"masquerade": null}]}}, {"rule": {"family": "ip", "table": "egw", "chain": "forward", "handle": 8, "comment": "clamp TCP MSS to the tunnel MTU", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "egw.vxlan"}}, {"match": {"op": "==", "left": {"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, ["syn", "rst"]]}, "right": "syn"}}, {"match": {"op": ">", "left": {"tcp option": {"name": "maxseg", "field": "size"}}, "right": 1410}}, {"mangle": {"key": {"tcp option": {"name": "maxseg", "field": "size"}}, "value": 1410}}]}}, {"rule": {"family": "ip", "table": "egw", "chain": "tunnel_prerouting", "handle": 9, "comment": "the tunnel's outer packets skip conntrack", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "10.10.0.0", "len": 24}}}}, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 4790}}, {"notrack": null}]}}, {"rule": {"family": "ip", "table": "egw", "chain": "tunnel_output", "handle": 10, "comment": "the tunnel's outer packets skip conntrack", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "10.10.0.0", "len": 24}}}}, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 4790}}, {"notrack": null}]}}]}`;

/** `ip -4 -json addr show` */
export const ADDRS = String.raw`[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"noqueue","operstate":"UNKNOWN","group":"default","txqlen":1000,"addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo","valid_life_time":4294967295,"preferred_life_time":4294967295}]},{"ifindex":2,"link_index":2,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","group":"default","txqlen":1000,"link_netnsid":0,"addr_info":[{"family":"inet","local":"172.31.99.11","prefixlen":24,"scope":"global","label":"eth0","valid_life_time":4294967295,"preferred_life_time":4294967295}]}]`;

/** `cat /proc/sys/net/ipv4/fib_multipath_hash_policy /proc/sys/net/ipv4/ip_forward` */
export const SYSCTLS = '1\n1\n';

/** stderr of `ip -d -json addr show dev nope` (exit 1) */
export const MISSING_DEVICE_STDERR = 'Device "nope" does not exist.\n';
/** stderr of `nft -j list table ip nope` (exit 1) */
export const MISSING_TABLE_STDERR = 'Error: No such file or directory\nlist table ip nope\n              ^^^^\n';

// ---- with stickiness (captured the same way after NodeDataplane.reconcile(desiredState(), natConfig()) with the
// default stickiness options: gateways 10.10.0.2 / 10.10.0.3 got marks 0x40 / 0x80, tables 2000001 / 2000002,
// one client pool 10.244.0.0/16)

/** `ip -N -4 -json rule list` of that node (no strays). */
export const RULES_STICKY = String.raw`[{"priority":0,"src":"all","table":"255"},{"priority":99,"src":"10.244.0.0","srclen":16,"fwmark":"0x40","fwmask":"0x3fc0","table":"2000001"},{"priority":99,"src":"10.244.0.0","srclen":16,"fwmark":"0x80","fwmask":"0x3fc0","table":"2000002"},{"priority":100,"src":"10.244.0.5","table":"1001"},{"priority":100,"src":"10.244.0.6","table":"1002"},{"priority":100,"src":"10.244.0.7","table":"1001"},{"priority":32766,"src":"all","table":"254"},{"priority":32767,"src":"all","table":"253"}]`;

/** `ip -N -4 -json route show table all` of that node (no strays). */
export const ROUTES_STICKY = String.raw`[{"dst":"default","gateway":"10.10.0.2","dev":"egw.vxlan","table":"2000001","flags":["onlink"]},{"dst":"default","gateway":"10.10.0.3","dev":"egw.vxlan","table":"2000002","flags":["onlink"]},{"dst":"default","table":"1001","flags":[],"nexthops":[{"gateway":"10.10.0.2","dev":"egw.vxlan","weight":1,"flags":["onlink"]},{"gateway":"10.10.0.3","dev":"egw.vxlan","weight":1,"flags":["onlink"]}]},{"type":"9","dst":"10.244.0.0/16","table":"1001","flags":[]},{"dst":"default","gateway":"10.10.0.2","dev":"egw.vxlan","table":"1002","flags":["onlink"]},{"type":"7","dst":"8.8.0.0/16","table":"1002","flags":[]},{"type":"9","dst":"10.244.0.0/16","table":"1002","flags":[]},{"dst":"172.31.99.0/24","dev":"eth0","protocol":"2","scope":"253","prefsrc":"172.31.99.11","flags":[]},{"type":"2","dst":"127.0.0.0/8","dev":"lo","table":"255","protocol":"2","scope":"254","prefsrc":"127.0.0.1","flags":[]},{"type":"2","dst":"127.0.0.1","dev":"lo","table":"255","protocol":"2","scope":"254","prefsrc":"127.0.0.1","flags":[]},{"type":"3","dst":"127.255.255.255","dev":"lo","table":"255","protocol":"2","scope":"253","prefsrc":"127.0.0.1","flags":[]},{"type":"2","dst":"172.31.99.11","dev":"eth0","table":"255","protocol":"2","scope":"254","prefsrc":"172.31.99.11","flags":[]},{"type":"3","dst":"172.31.99.255","dev":"eth0","table":"255","protocol":"2","scope":"253","prefsrc":"172.31.99.11","flags":[]}]`;

/** `nft -j list table ip egw` of that node. */
export const NFT_STICKY = String.raw`{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "ip", "name": "egw", "handle": 3}}, {"map": {"family": "ip", "name": "gw_marks", "table": "egw", "type": "ipv4_addr", "handle": 1, "map": "mark", "elem": [["10.10.0.2", 64], ["10.10.0.3", 128]]}}, {"chain": {"family": "ip", "table": "egw", "name": "postrouting", "handle": 2, "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}, {"chain": {"family": "ip", "table": "egw", "name": "forward", "handle": 3, "type": "filter", "hook": "forward", "prio": -150, "policy": "accept"}}, {"chain": {"family": "ip", "table": "egw", "name": "prerouting", "handle": 4, "type": "filter", "hook": "prerouting", "prio": -150, "policy": "accept"}}, {"chain": {"family": "ip", "table": "egw", "name": "postrouting_mark", "handle": 5, "type": "filter", "hook": "postrouting", "prio": -150, "policy": "accept"}}, {"chain": {"family": "ip", "table": "egw", "name": "tunnel_prerouting", "handle": 6, "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}}, {"chain": {"family": "ip", "table": "egw", "name": "tunnel_output", "handle": 7, "type": "filter", "hook": "output", "prio": -300, "policy": "accept"}}, {"rule": {"family": "ip", "table": "egw", "chain": "postrouting", "handle": 8, "comment": "egress-pool sources are never SNATed", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "10.10.0.0", "len": 24}}}}, {"return": null}]}}, {"rule": {"family": "ip", "table": "egw", "chain": "postrouting", "handle": 10, "comment": "natOutgoing", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "eth0"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "10.244.0.0", "len": 16}}}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"set": [{"prefix": {"addr": "10.10.0.0", "len": 24}}, {"prefix": {"addr": "10.244.0.0", "len": 16}}]}}}, {"masquerade": null}]}}, {"rule": {"family": "ip", "table": "egw", "chain": "forward", "handle": 11, "comment": "clamp TCP MSS to the tunnel MTU", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "egw.vxlan"}}, {"match": {"op": "==", "left": {"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, ["syn", "rst"]]}, "right": "syn"}}, {"match": {"op": ">", "left": {"tcp option": {"name": "maxseg", "field": "size"}}, "right": 1410}}, {"mangle": {"key": {"tcp option": {"name": "maxseg", "field": "size"}}, "value": 1410}}]}}, {"rule": {"family": "ip", "table": "egw", "chain": "prerouting", "handle": 12, "comment": "established client connections keep their gateway", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "10.244.0.0", "len": 16}}}}, {"match": {"op": "!=", "left": {"&": [{"ct": {"key": "mark"}}, 16320]}, "right": 0}}, {"mangle": {"key": {"meta": {"key": "mark"}}, "value": {"&": [{"ct": {"key": "mark"}}, 16320]}}}]}}, {"rule": {"family": "ip", "table": "egw", "chain": "postrouting_mark", "handle": 13, "comment": "a new connection remembers its gateway", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "egw.vxlan"}}, {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}}, {"mangle": {"key": {"ct": {"key": "mark"}}, "value": {"map": {"key": {"rt": {"key": "nexthop", "family": "ip"}}, "data": "@gw_marks"}}}}]}}, {"rule": {"family": "ip", "table": "egw", "chain": "tunnel_prerouting", "handle": 14, "comment": "the tunnel's outer packets skip conntrack", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "10.10.0.0", "len": 24}}}}, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 4790}}, {"notrack": null}]}}, {"rule": {"family": "ip", "table": "egw", "chain": "tunnel_output", "handle": 15, "comment": "the tunnel's outer packets skip conntrack", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "10.10.0.0", "len": 24}}}}, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": 4790}}, {"notrack": null}]}}]}`;

/** `nft list table ip egw` of that node. */
export const NFT_STICKY_TEXT = String.raw`table ip egw {
	map gw_marks {
		type ipv4_addr : mark
		elements = { 10.10.0.2 : 0x00000040, 10.10.0.3 : 0x00000080 }
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 10.10.0.0/24 return comment "egress-pool sources are never SNATed"
		oifname "eth0" ip saddr 10.244.0.0/16 ip daddr != { 10.10.0.0/24, 10.244.0.0/16 } masquerade comment "natOutgoing"
	}

	chain forward {
		type filter hook forward priority mangle; policy accept;
		oifname "egw.vxlan" tcp flags syn / syn,rst tcp option maxseg size > 1410 tcp option maxseg size set 1410 comment "clamp TCP MSS to the tunnel MTU"
	}

	chain prerouting {
		type filter hook prerouting priority mangle; policy accept;
		ip saddr 10.244.0.0/16 ct mark & 0x00003fc0 != 0x00000000 meta mark set ct mark & 0x00003fc0 comment "established client connections keep their gateway"
	}

	chain postrouting_mark {
		type filter hook postrouting priority mangle; policy accept;
		oifname "egw.vxlan" ct state new ct mark set rt ip nexthop map @gw_marks comment "a new connection remembers its gateway"
	}

	chain tunnel_prerouting {
		type filter hook prerouting priority raw; policy accept;
		ip daddr 10.10.0.0/24 udp dport 4790 notrack comment "the tunnel's outer packets skip conntrack"
	}

	chain tunnel_output {
		type filter hook output priority raw; policy accept;
		ip daddr 10.10.0.0/24 udp dport 4790 notrack comment "the tunnel's outer packets skip conntrack"
	}
}
`;
