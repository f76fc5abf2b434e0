// Stands in for bin/egw.js in the lab tests (run with `node --import tsx`): serves `lab kubelet` and `lab echo`
// straight from src/lab, so the tests need neither a build nor the CLI wiring. Any other command goes to the CLI.
import { openStore } from '../../src/datastore/open.js';
import { createLogger } from '../../src/log.js';
import { runEcho } from '../../src/lab/echo.js';
import { runKubelet } from '../../src/lab/kubelet.js';

function opt(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function shim(args: string[]): Promise<number> {
  const ac = new AbortController();
  process.once('SIGTERM', () => ac.abort());
  process.once('SIGINT', () => ac.abort());
  const datastore = opt(args, '--datastore');
  const lab = args.indexOf('lab');
  if (lab >= 0 && args[lab + 1] === 'echo') {
    await runEcho({ log: createLogger('echo'), signal: ac.signal });
    return 0;
  }
  if (lab >= 0 && args[lab + 1] === 'kubelet') {
    const store = await openStore(datastore);
    try {
      await runKubelet({ store, lab: opt(args, '--lab')!, node: opt(args, '--node')!, log: createLogger(`kubelet ${opt(args, '--node')}`), signal: ac.signal });
    } finally {
      await store.close();
    }
    return 0;
  }
  const { main } = await import('../../src/cli/main.js');
  return main(process.argv);
}

shim(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (e) => {
    console.error(`egw-shim: ${e instanceof Error ? e.stack : e}`);
    process.exitCode = 1;
  },
);
