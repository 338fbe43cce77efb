#!/usr/bin/env node
/**
 * `consolidate`: the operator's tool (the local composition root: it reads the environment, the
 * configuration file and the flags once and builds everything below).
 */
import { COMMANDS } from './commands';
import { EXIT } from './exit';
import { reportFailure, runProgram } from './program';

const io = {
  out: (line: string) => void process.stdout.write(`${line}\n`),
  err: (line: string) => void process.stderr.write(`${line}\n`),
  tty: process.stdout.isTTY === true,
  env: process.env,
};

runProgram(COMMANDS, process.argv.slice(2), io).then(
  (code) => {
    process.exitCode = code;
    // Servers, timers and DuckDB handles are closed by the commands; this only cuts a lingering socket short.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (error: unknown) => {
    process.exitCode = reportFailure(error, io) || EXIT.failed;
  },
);
