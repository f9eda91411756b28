#!/usr/bin/env node
// Register a job order through the queue, as `jobordre register-order ORDER.json --as
// PRINCIPAL --json` does, and print the registered order as JSON.
//
//   JOBORDRE_KEY_FILE=jobcentre_101.key JOBORDRE_REDIS_URL=redis://host:6379/0 \
//     node clients/node/examples/register-order.js ORDER.json --as jobcentre:101
//
// Exit codes and the {"error": {...}} document on failure are the CLI's (README, "Errors
// and exit codes").

import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

import { Client, JobordreError, readKeyFile } from '../src/index.js';

const EXIT = {
  validation_error: 2, forbidden: 3, not_found: 4, version_conflict: 5, invalid_transition: 6, unavailable: 7,
};

function fail(error) {
  process.stdout.write(`${JSON.stringify({ error: error.toJSON() })}\n`);
  process.exit(EXIT[error.code] ?? 1);
}

async function main() {
  let parsed;
  try {
    parsed = parseArgs({ allowPositionals: true, options: { as: { type: 'string' }, 'command-id': { type: 'string' } } });
  } catch (error) {
    fail(new JobordreError({ code: 'validation_error', message: error.message }));
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1 || !values.as) {
    fail(new JobordreError({ code: 'validation_error', message: 'usage: register-order.js ORDER.json --as PRINCIPAL' }));
  }
  const { JOBORDRE_KEY_FILE: keyFile, JOBORDRE_REDIS_URL: url } = process.env;
  if (!keyFile || !url) {
    fail(new JobordreError({ code: 'validation_error', message: 'set JOBORDRE_KEY_FILE (the organisation\'s key file) and JOBORDRE_REDIS_URL' }));
  }
  let order;
  let key;
  try {
    order = JSON.parse(await readFile(positionals[0], 'utf8'));
    key = await readKeyFile(keyFile);
  } catch (error) {
    fail(new JobordreError({ code: 'validation_error', message: `cannot read input: ${error.message}` }));
  }
  if (key.principal !== values.as) {
    fail(new JobordreError({ code: 'forbidden', message: `the key file is ${key.principal}'s, not ${values.as}'s`, field: 'principal' }));
  }
  const client = new Client({
    key,
    url,
    prefix: process.env.JOBORDRE_REDIS_PREFIX ?? 'jobordre',
    replyTimeoutMs: Number(process.env.JOBORDRE_REPLY_TIMEOUT_MS ?? 30_000),
  });
  try {
    await client.connect();
    const result = await client.call('register_order', { order }, { commandId: values['command-id'] });
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } catch (error) {
    if (error instanceof JobordreError) fail(error);
    fail(new JobordreError({ code: 'unavailable', message: `cannot reach the broker (${error.code ?? error.name}); resending with --command-id is safe` }));
  } finally {
    await client.close().catch(() => {});
  }
}

await main();
