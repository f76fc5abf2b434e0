// Reading /metrics back: the Prometheus text format's samples (name, labels, value), and a scrape over HTTP or over
// the lab's unix sockets (docs/observability.md). For egw's own tools (the dashboard, the lab tests) — Prometheus
// itself reads the endpoints directly.
import http from 'node:http';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/gy;

/** The samples of a Prometheus text exposition; comments skipped. Throws on a line that is not a sample. */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const m = LINE.exec(line);
    if (!m) throw new Error(`metrics line ${i + 1}: not a sample: ${JSON.stringify(line.slice(0, 120))}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      LABEL.lastIndex = 0;
      let l: RegExpExecArray | null;
      let end = 0;
      while ((l = LABEL.exec(m[2])) !== null) {
        labels[l[1]!] = l[2]!.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
        end = LABEL.lastIndex;
      }
      if (end !== m[2].length) throw new Error(`metrics line ${i + 1}: bad labels: ${JSON.stringify(m[2].slice(0, 120))}`);
    }
    const v = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    out.push({ name: m[1]!, labels, value: v });
  });
  return out;
}

/** GET /metrics at `target`: `http://host:port` or `unix:/path/to.sock`. Rejects on failure or a status other than 200. */
export function scrape(target: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const opts: http.RequestOptions = target.startsWith('unix:')
      ? { socketPath: target.slice(5), path: '/metrics' }
      : (() => {
          const u = new URL('/metrics', target);
          return { host: u.hostname, port: u.port, path: u.pathname };
        })();
    const req = http.get({ ...opts, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => {
        if (res.statusCode === 200) resolve(body);
        else reject(new Error(`${target}: HTTP ${res.statusCode}`));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${target}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** The value of one series (labels matched on the given ones), or undefined. */
export function valueOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}
