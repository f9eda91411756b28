// Envelopes (docs/protocol.md, "The envelope"): built, sealed and signed as the worker checks them.

import { randomUUID } from 'node:crypto';

import { sealPayload, sign } from './crypto.js';

/** The envelope schema version this client writes. */
export const SCHEMA_VERSION = 1;
/** Command kinds that change the store: they travel on jobordre.commands. */
export const WRITE_KINDS = new Set([
  'register_order', 'update_order', 'change_order_status', 'register_placement',
  'change_placement_status', 'take_order', 'release_order', 'expire_orders', 'follow',
  'unfollow', 'anonymise_placements',
]);
/** Every command kind the workers serve. */
export const KINDS = new Set([
  ...WRITE_KINDS, 'search_orders', 'get_order', 'order_changes', 'placement_log', 'inbox',
  'following', 'audit_person', 'command_result',
]);

/** The Dramatiq queue a command kind travels on. */
export function queueFor(kind) {
  if (!KINDS.has(kind)) throw new TypeError(`jobordre: unknown command kind ${kind}`);
  return WRITE_KINDS.has(kind) ? 'jobordre.commands' : 'jobordre.queries';
}

/**
 * `sent_at` as the worker writes it back when it checks the signature: UTC, `Z`, and the
 * fraction of a second in 6 digits, or none when it is zero.
 */
export function formatSentAt(date) {
  const text = date.toISOString(); // 2026-12-02T08:15:30.250Z
  const millis = text.slice(20, 23);
  return millis === '000' ? `${text.slice(0, 19)}Z` : `${text.slice(0, 19)}.${millis}000Z`;
}

/**
 * A signed envelope for `key` (`{principal, key_id, secret}`), its cpr/note sealed.
 * Options: commandId, correlationId, caseworker, sentAt (a Date), nonces (test vectors).
 */
export function makeEnvelope(kind, payload, key, options = {}) {
  queueFor(kind);
  const commandId = options.commandId ?? randomUUID().replaceAll('-', '');
  const envelope = {
    schema_version: SCHEMA_VERSION,
    kind,
    command_id: commandId,
    principal: key.principal,
    correlation_id: options.correlationId ?? commandId,
    sent_at: formatSentAt(options.sentAt ?? new Date()),
    caseworker: options.caseworker ?? null,
    payload: sealPayload(payload, commandId, key.secret, [...(options.nonces ?? [])]),
    key_id: key.key_id,
  };
  return { ...envelope, signature: sign(envelope, key.secret) };
}
