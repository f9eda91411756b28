// A jobordre client over Redis (docs/protocol.md): enqueue a signed command as a Dramatiq
// message, wait for its reply and believe only one that authenticates.

import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';

import { createClient } from 'redis';

import { openReply } from './crypto.js';
import { makeEnvelope, queueFor } from './envelope.js';
import { makeEnvelopeV2, openReplyV2, parseKeyFile, replyKeyV2, VERSION as V2 } from './v2.js';

/** Dramatiq's key namespace on Redis. */
export const DRAMATIQ_NAMESPACE = 'dramatiq';
/** Default prefix of jobordre's own keys (JOBORDRE_REDIS_PREFIX). */
export const DEFAULT_PREFIX = 'jobordre';
/** Default time to wait for a reply, in milliseconds (JOBORDRE_REPLY_TIMEOUT_MS). */
export const DEFAULT_REPLY_TIMEOUT_MS = 30_000;

/** An error the worker reported (`code` as in docs/protocol.md, "Error codes"), or `unavailable`. */
export class JobordreError extends Error {
  constructor({ code, message, field }) {
    super(message);
    this.name = 'JobordreError';
    this.code = code;
    this.field = field ?? null;
  }

  toJSON() {
    return { code: this.code, message: this.message, ...(this.field ? { field: this.field } : {}) };
  }
}

/**
 * A key file's key: version 1 `{"principal", "key_id", "secret"}`, or a version 2 key file
 * (`"v": 2`, docs/protocol.md § 14.2), with which the client speaks protocol 2.
 */
export async function readKeyFile(path) {
  const data = JSON.parse(await readFile(path, 'utf8'));
  if (data.v === V2) return parseKeyFile(data);
  for (const name of ['principal', 'key_id', 'secret']) {
    if (typeof data[name] !== 'string') throw new TypeError(`jobordre: ${path} is not a key file (no ${name})`);
  }
  return { principal: data.principal, key_id: data.key_id, secret: data.secret };
}

/** The Dramatiq message (as stored on Redis) that carries `envelope`. */
export function dramatiqMessage(envelope, now = Date.now()) {
  const messageId = randomUUID();
  return {
    queue_name: queueFor(envelope.kind),
    actor_name: envelope.kind,
    args: [JSON.stringify(envelope)],
    kwargs: {},
    options: { redis_message_id: messageId },
    message_id: messageId,
    message_timestamp: now,
  };
}

export class Client {
  /**
   * `key`: the organisation's key; `url`: the Redis URL; `prefix`, `caseworker`,
   * `replyTimeoutMs` as the settings of the same names.
   */
  constructor({ key, url, prefix = DEFAULT_PREFIX, caseworker = null, replyTimeoutMs = DEFAULT_REPLY_TIMEOUT_MS }) {
    this.key = key;
    this.prefix = prefix;
    this.caseworker = caseworker;
    this.replyTimeoutMs = replyTimeoutMs;
    this.redis = createClient({ url });
    // BLPOP holds its connection: replies are awaited on a connection of their own.
    this.waiter = this.redis.duplicate();
    /** The signature of each command sent, by command id: a reply must be bound to it. */
    this.sent = new Map();
  }

  async connect() {
    await Promise.all([this.redis.connect(), this.waiter.connect()]);
    return this;
  }

  async close() {
    await Promise.all([this.redis.close(), this.waiter.close()]);
  }

  /** Whether this client speaks protocol 2 (its key file is a version 2 key). */
  get v2() {
    return this.key.v === V2;
  }

  /** The Redis list a command's reply is pushed onto (protocol 2: the principal's own). */
  replyKey(commandId) {
    return this.v2 ? replyKeyV2(this.prefix, this.key.principal, commandId) : `${this.prefix}:reply:${commandId}`;
  }

  /** A signed envelope in this client's protocol. */
  envelope(kind, payload, options = {}) {
    const make = this.v2 ? makeEnvelopeV2 : makeEnvelope;
    return make(kind, payload, this.key, { caseworker: this.caseworker, ...options });
  }

  /** Enqueue a signed envelope atomically (HSET + RPUSH in one MULTI); returns its command id. */
  async sendEnvelope(envelope) {
    const message = dramatiqMessage(envelope);
    const queue = `${DRAMATIQ_NAMESPACE}:${message.queue_name}`;
    await this.redis
      .multi()
      .hSet(`${queue}.msgs`, message.message_id, JSON.stringify(message))
      .rPush(queue, message.message_id)
      .exec();
    this.sent.set(envelope.command_id, envelope.signature);
    return envelope.command_id;
  }

  /** Build, seal, sign and enqueue a command; returns its envelope. */
  async send(kind, payload, options = {}) {
    const envelope = this.envelope(kind, payload, options);
    await this.sendEnvelope(envelope);
    return envelope;
  }

  /**
   * The result of a command this client sent; throws JobordreError with the worker's
   * error, or `unavailable` when no authentic reply came within `timeoutMs`. Replies that
   * do not verify are dropped and the wait goes on.
   */
  async wait(commandId, timeoutMs = this.replyTimeoutMs) {
    const signature = this.sent.get(commandId);
    if (signature === undefined) {
      throw new JobordreError({ code: 'validation_error', message: `command ${commandId} was not sent by this client`, field: 'command_id' });
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const item = await this.waiter.blPop(this.replyKey(commandId), Math.max(left, 1) / 1000);
      if (item === null) break;
      let wire;
      try {
        wire = JSON.parse(item.element);
      } catch {
        continue;
      }
      const reply = this.v2 ? openReplyV2(wire, this.key, commandId, signature) : openReply(wire, this.key, commandId, signature);
      if (reply === null) continue;
      // Answered: forget the signature (a long-lived client would otherwise grow); a resend
      // of the id is signed afresh and remembered again.
      this.sent.delete(commandId);
      if (!reply.ok) throw new JobordreError(reply.error ?? { code: 'error', message: 'no error body' });
      return reply.result;
    }
    throw new JobordreError({
      code: 'unavailable',
      message: `no worker answered command ${commandId} within ${timeoutMs} ms; resending with the same command id is safe`,
    });
  }

  /** Send a command and wait for its result. Options as `send`, plus `timeoutMs`. */
  async call(kind, payload, options = {}) {
    const { timeoutMs, ...sendOptions } = options;
    const envelope = await this.send(kind, payload, sendOptions);
    return this.wait(envelope.command_id, timeoutMs);
  }

  /** The organisation's inbox after cursor `since` (a `"<epoch>:<seq>"` string, or "0"): `{events, cursor, from_seq, head}`. */
  async inbox({ since = '0', limit = 100, headersOnly = false } = {}) {
    return this.call('inbox', { since, limit, headers_only: headersOnly });
  }

  /**
   * New event headers on the stream `<prefix>:events` after stream id `lastId`, waiting up
   * to `blockMs`: `[{streamId, header}]`. Only a wake-up: read the events with `inbox`.
   */
  async eventHeaders(lastId = '$', blockMs = 1000) {
    const answer = await this.waiter.xRead({ key: `${this.prefix}:events`, id: lastId }, { BLOCK: blockMs, COUNT: 100 });
    if (!answer) return [];
    const headers = [];
    for (const stream of answer) {
      for (const entry of stream.messages) {
        try {
          headers.push({ streamId: entry.id, header: JSON.parse(entry.message.event) });
        } catch {
          // An unreadable entry: the inbox query is authoritative and shows the gap.
        }
      }
    }
    return headers;
  }
}
