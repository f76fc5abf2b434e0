// Parsers for the values egw reads out of strings (annotations, FelixConfiguration durations). One home each, so
// validation (which rejects) and the processes (which act) cannot disagree about what a value means.

/** Calico's maxNextHops annotation: a decimal of 1–9 digits (0 = all gateways). */
const MAX_NEXT_HOPS = /^[0-9]{1,9}$/;

/** The value of `egress.projectcalico.org/maxNextHops`; undefined if it is not one. */
export function parseMaxNextHops(text: string): number | undefined {
  return MAX_NEXT_HOPS.test(text) ? Number(text) : undefined;
}

/** A Go duration as Felix reads it (`200ms`, `1.5s`, `1m30s`). */
const GO_DURATION = /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/;
const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration in milliseconds; undefined if the text is not one. */
export function parseGoDuration(s: string | undefined): number | undefined {
  if (typeof s !== 'string' || !GO_DURATION.test(s)) return undefined;
  let ms = 0;
  for (const m of s.matchAll(/([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(m[1]) * UNIT_MS[m[2]];
  return ms;
}
