// Signing, sealing and reply authentication (docs/protocol.md, "Signing", "Sealed
// personal data", "Replies"): HMAC-SHA256, HKDF-SHA256 and AES-256-GCM from node:crypto.

import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

import { canonical, pythonJson } from './canonical.js';

/** Payload fields (top level) that travel sealed: they may hold personal data. */
export const SEALED_FIELDS = ['cpr', 'note'];
/** The reply format this client reads. */
export const REPLY_VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const INFO = {
  payload: 'jobordre payload seal v1',
  replySeal: 'jobordre reply seal v1',
  replyMac: 'jobordre reply mac v1',
};

/** A 32-byte key for one purpose: HKDF-SHA256 of the secret's UTF-8 bytes, no salt. */
export function derive(secret, info) {
  return Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.alloc(0), info, 32));
}

/** Lowercase hex HMAC-SHA256 of the envelope's canonical form under the secret. */
export function sign(envelope, secret) {
  return createHmac('sha256', Buffer.from(secret, 'utf8')).update(canonical(envelope), 'utf8').digest('hex');
}

/** base64 of nonce || AES-256-GCM ciphertext || tag. `nonce` only for test vectors. */
export function seal(key, plaintext, aad, nonce = randomBytes(NONCE_BYTES)) {
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return Buffer.concat([nonce, body]).toString('base64');
}

/** The plaintext of `seal`'s output as a string; throws if it does not authenticate. */
export function open(key, sealed, aad) {
  const blob = Buffer.from(sealed, 'base64');
  if (blob.length < NONCE_BYTES + TAG_BYTES || blob.toString('base64') !== sealed) {
    throw new Error('jobordre: not a sealed value');
  }
  const decipher = createDecipheriv('aes-256-gcm', key, blob.subarray(0, NONCE_BYTES));
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(blob.subarray(blob.length - TAG_BYTES));
  const plain = Buffer.concat([decipher.update(blob.subarray(NONCE_BYTES, blob.length - TAG_BYTES)), decipher.final()]);
  return plain.toString('utf8');
}

/** A copy of `payload` with every SEALED_FIELDS member that is set sealed for the foundation. */
export function sealPayload(payload, commandId, secret, nonces = []) {
  const key = derive(secret, INFO.payload);
  const sealed = { ...payload };
  for (const name of SEALED_FIELDS) {
    const value = payload[name];
    if (value === undefined || value === null) continue;
    const nonce = nonces.length ? nonces.shift() : undefined;
    // Written as the Python client writes it, so both seal the same bytes (any JSON opens).
    const plaintext = typeof value === 'string' ? pythonJson(value) : JSON.stringify(value);
    sealed[name] = { sealed: seal(key, plaintext, `${commandId}/${name}`, nonce) };
  }
  return sealed;
}

/** Lowercase hex HMAC that binds a reply body to the command (and its signature) it answers. */
export function replyMac(secret, commandId, requestSignature, ok, body) {
  const input = `jobordre-reply-v1\n${commandId}\n${requestSignature}\n${ok ? 'ok' : 'error'}\n${body}`;
  return createHmac('sha256', derive(secret, INFO.replyMac)).update(input, 'utf8').digest('hex');
}

/**
 * The reply `{command_id, ok, result | error}` if `wire` answers this very command
 * (sent with `requestSignature`, signed by `key`); `null` for anything else: a forgery,
 * another send of the same id, another organisation's reply, an unknown format.
 */
export function openReply(wire, key, commandId, requestSignature) {
  if (wire === null || typeof wire !== 'object') return null;
  if (wire.v !== REPLY_VERSION || wire.command_id !== commandId || wire.key_id !== key.key_id) return null;
  const { ok, body, mac } = wire;
  if (typeof ok !== 'boolean' || typeof body !== 'string' || typeof mac !== 'string') return null;
  const expected = Buffer.from(replyMac(key.secret, commandId, requestSignature, ok, body), 'utf8');
  const given = Buffer.from(mac, 'utf8');
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return null;
  let inner;
  try {
    inner = JSON.parse(open(derive(key.secret, INFO.replySeal), body, commandId));
  } catch {
    return null;
  }
  if (inner === null || typeof inner !== 'object' || Array.isArray(inner)) return null;
  return { command_id: commandId, ok, ...inner };
}
