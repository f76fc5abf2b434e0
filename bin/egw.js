#!/usr/bin/env node
// The `egw` executable: runs the compiled CLI (built by `make build` / `make setup`).
import { main } from '../dist/cli/main.js';

main(process.argv).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(`egw: ${err && err.message ? err.message : err}`); process.exitCode = 1; },
);
