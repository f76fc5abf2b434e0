// A small structured logger for the long-running processes (agent, gateway, controller, kubelet): one line per
// event on stderr, `time level component: message key=value…`, so lab logs read well and grep well.
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
const ORDER: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export interface Logger {
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
  child(component: string): Logger;
}

export function createLogger(component: string, opts: { level?: LogLevel; write?: (line: string) => void } = {}): Logger {
  const level = opts.level ?? ((process.env.EGW_LOG_LEVEL as LogLevel) in ORDER ? (process.env.EGW_LOG_LEVEL as LogLevel) : 'info');
  const write = opts.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const emit = (l: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[l] > ORDER[level]) return;
    const kv = fields ? Object.entries(fields).map(([k, v]) => ` ${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`).join('') : '';
    write(`${new Date().toISOString()} ${l.toUpperCase().padEnd(5)} ${component}: ${msg}${kv}`);
  };
  return {
    error: (m, f) => emit('error', m, f),
    warn: (m, f) => emit('warn', m, f),
    info: (m, f) => emit('info', m, f),
    debug: (m, f) => emit('debug', m, f),
    child: (c) => createLogger(`${component}/${c}`, { level, write }),
  };
}

/** For tests: collects lines instead of printing them. */
export function memoryLogger(lines: string[] = []): Logger & { lines: string[] } {
  return Object.assign(createLogger('test', { level: 'debug', write: (l) => lines.push(l) }), { lines });
}
