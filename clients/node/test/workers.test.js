// The Node client against real jobordre workers on a real Redis. Run by the project's
// pytest suite (tests/clients/test_node_client.py), which starts redis-server and a worker
// and sets JOBORDRE_REDIS_URL, JOBORDRE_KEY_FILE and JOBORDRE_TEST_ORDER_FILE. Run once
// with a version 1 key file and once with a version 2 one: the client speaks its key's
// protocol.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { Client, JobordreError, readKeyFile, seal, sealV2, signDocument } from '../src/index.js';

const { JOBORDRE_REDIS_URL: url, JOBORDRE_KEY_FILE: keyFile, JOBORDRE_TEST_ORDER_FILE: orderFile } = process.env;
if (!url || !keyFile || !orderFile) {
  throw new Error('workers.test.js needs running workers: run it through pytest tests/clients (bash scripts/test does)');
}
const CPR = '0101901234';

/** A reply anyone with Redis access could push: it must never be believed. */
function forgedReply(client, envelope, ok) {
  if (client.v2) {
    const body = sealV2(Buffer.from(JSON.stringify({ ok, result: { title: 'forged' } })), randomBytes(32), 'jobordre v2 reply', 'x');
    return { v: 2, command_id: envelope.command_id, principal: client.key.principal, in_reply_to: envelope.signature, key_id: client.key.foundation.key_id, body, signature: 'A'.repeat(86) };
  }
  const body = seal(randomBytes(32), JSON.stringify({ result: { title: 'forged' } }), envelope.command_id);
  return { v: 1, command_id: envelope.command_id, ok, key_id: client.key.key_id, body, mac: '0'.repeat(64) };
}

describe('against real workers', () => {
  let client;
  let order;

  before(async () => {
    client = await new Client({ key: await readKeyFile(keyFile), url, caseworker: 'node.test', replyTimeoutMs: 20_000 }).connect();
  });
  after(async () => client.close());

  it('registers an order', async () => {
    order = await client.call('register_order', { order: JSON.parse(readFileSync(orderFile, 'utf8')) });
    assert.equal(order.registered_by, client.key.principal);
    assert.equal(order.status, 'processing'); // its registering jobcentre processes it
    assert.ok(order.id >= 1);
  });

  it('answers a resend with the same command id with the stored result', async () => {
    const payload = { order: JSON.parse(readFileSync(orderFile, 'utf8')) };
    const commandId = `node-register-${Date.now()}`;
    const first = await client.call('register_order', payload, { commandId });
    const resent = await client.call('register_order', payload, { commandId });
    assert.deepEqual(resent, first); // applied once: the same order, not a second one
  });

  it('places a person, the CPR sealed on the way', async () => {
    const placement = await client.call('register_placement', { order_id: order.id, cpr: CPR, referral: true, note: 'Første samtale' });
    assert.equal(placement.cpr, CPR);
    assert.equal(placement.note, 'Første samtale');
    assert.equal(placement.placed_by, client.key.principal);
  });

  it('finds the order by search', async () => {
    const found = await client.call('search_orders', { text: order.title.split(' ')[0], municipality: order.address.municipality });
    assert.ok(found.results.some((o) => o.id === order.id), JSON.stringify(found));
  });

  it('reads the placement log', async () => {
    const log = await client.call('placement_log', { order_id: order.id });
    assert.equal(log.order_id, order.id);
    assert.equal(log.placements.length, 1);
    assert.equal(log.placements[0].cpr, CPR);
    assert.ok(log.entries.length >= 1);
  });

  it('reads the inbox', async () => {
    const inbox = await client.inbox({ headersOnly: true });
    const types = inbox.events.filter((e) => e.order_id === order.id).map((e) => e.type);
    assert.ok(types.includes('order_registered'), JSON.stringify(types));
    assert.ok(types.includes('placement_log_updated'), JSON.stringify(types));
    assert.equal(inbox.cursor, inbox.events.at(-1).cursor);
    assert.ok(inbox.cursor.endsWith(`:${inbox.events.at(-1).seq}`), "a cursor is <epoch>:<seq>");
  });

  it('reports a rejection with its code and field', async () => {
    await assert.rejects(client.call('get_order', { order_id: order.id + 1000 }), (error) => {
      assert.ok(error instanceof JobordreError);
      assert.equal(error.code, 'not_found');
      return true;
    });
    await assert.rejects(client.call('get_order', { order_id: 0 }), { code: 'validation_error' });
  });

  it('drops a forged reply pushed ahead of the real one, and believes the real one', async () => {
    const envelope = client.envelope('get_order', { order_id: order.id });
    await client.redis.rPush(client.replyKey(envelope.command_id), JSON.stringify(forgedReply(client, envelope, true)));
    await client.sendEnvelope(envelope);
    const result = await client.wait(envelope.command_id);
    assert.equal(result.title, order.title);
  });

  it('times out as unavailable when only a forged reply comes', async () => {
    const envelope = client.envelope('get_order', { order_id: order.id });
    client.sent.set(envelope.command_id, envelope.signature); // never enqueued
    await client.redis.rPush(client.replyKey(envelope.command_id), JSON.stringify(forgedReply(client, envelope, false)));
    await assert.rejects(client.wait(envelope.command_id, 500), { code: 'unavailable' });
  });

  // Protocol 1 does not answer a command it cannot decode: this is protocol 2's alone.
  const protocol2 = JSON.parse(readFileSync(keyFile, 'utf8')).v === 2;
  (protocol2 ? it : () => {})('is told which field is wrong when a signed command has a refused form', async () => {
    const { signature, ...envelope } = client.envelope('get_order', { order_id: order.id });
    const wrong = { ...envelope, sent_at: new Date().toISOString().replace('Z', '+00:00') };
    const signed = { ...wrong, signature: signDocument(wrong, client.key.signPrivate) };
    await client.sendEnvelope(signed);
    await assert.rejects(client.wait(signed.command_id), { code: 'validation_error', field: 'sent_at' });
  });
});
