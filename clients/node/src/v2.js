// Protocol 2 (docs/protocol.md § 14): RFC 8785 canonical form (npm `canonicalize`), Ed25519
// signatures, the whole payload sealed to the foundation's X25519 key (HPKE base mode with
// its steps written out), replies sealed to this client and signed by the foundation.
// Everything from node:crypto; binary values are base64url without padding.

import {
  createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, diffieHellman,
  generateKeyPairSync, hkdfSync, randomUUID, sign as edSign, verify as edVerify,
} from 'node:crypto';

import canonicalize from 'canonicalize';

import { queueFor } from './envelope.js';

/** The envelope and reply version this module writes and reads. */
export const VERSION = 2;
/** HKDF salt of every seal: 32 zero bytes, spelled out. */
export const SALT = Buffer.alloc(32);
export const PAYLOAD_LABEL = 'jobordre v2 payload';
export const REPLY_LABEL = 'jobordre v2 reply';
const TAG_BYTES = 16;
// DER prefixes that make a raw 32-byte key a PKCS#8 private or SPKI public key.
const DER = {
  ed25519: { private: '302e020100300506032b657004220420', public: '302a300506032b6570032100' },
  x25519: { private: '302e020100300506032b656e04220420', public: '302a300506032b656e032100' },
};

export const b64url = (bytes) => Buffer.from(bytes).toString('base64url');
export function unb64url(text, field, length) {
  if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*$/.test(text)) throw new TypeError(`jobordre: ${field} is not base64url`);
  const bytes = Buffer.from(text, 'base64url');
  if (length !== undefined && bytes.length !== length) throw new TypeError(`jobordre: ${field} must hold ${length} bytes`);
  return bytes;
}

/** The RFC 8785 bytes of a JSON value (a Buffer of UTF-8). */
export function canonical(value) {
  return Buffer.from(canonicalize(value), 'utf8');
}

/** The bytes a signature covers: every member of `document` but `signature`. */
export function signedBytes(document) {
  const { signature, ...rest } = document;
  return canonical(rest);
}

const privateKey = (curve, raw) => createPrivateKey({ key: Buffer.concat([Buffer.from(DER[curve].private, 'hex'), raw]), format: 'der', type: 'pkcs8' });
const publicKey = (curve, raw) => createPublicKey({ key: Buffer.concat([Buffer.from(DER[curve].public, 'hex'), raw]), format: 'der', type: 'spki' });
const rawPublic = (key) => key.export({ format: 'der', type: 'spki' }).subarray(-32);

/** The raw public key of a raw private key (`curve`: 'ed25519' or 'x25519'). */
export function publicOf(curve, raw) {
  return rawPublic(createPublicKey(privateKey(curve, raw)));
}

/** base64url Ed25519 signature of `document`'s signed bytes under a 32-byte seed. */
export function signDocument(document, seed) {
  return b64url(edSign(null, signedBytes(document), privateKey('ed25519', seed)));
}

/** Whether `document.signature` is `publicRaw`'s signature of its signed bytes. */
export function verifies(document, publicRaw) {
  if (typeof document?.signature !== 'string' || document.signature.length !== 86) return false;
  try {
    return edVerify(null, signedBytes(document), publicKey('ed25519', publicRaw), unb64url(document.signature, 'signature', 64));
  } catch {
    return false;
  }
}

function keyAndNonce(dh, label, enc, recipient) {
  if (dh.every((byte) => byte === 0)) throw new Error('jobordre: all-zero X25519 secret');
  const okm = Buffer.from(hkdfSync('sha256', dh, SALT, Buffer.concat([Buffer.from(label, 'utf8'), enc, recipient]), 44));
  return [okm.subarray(0, 32), okm.subarray(32)];
}

/** `{enc, ct}`: `plaintext` (Buffer) sealed to the X25519 public key `recipient`. */
export function seal(plaintext, recipient, label, aad, ephemeral = undefined) {
  const own = ephemeral === undefined ? generateKeyPairSync('x25519').privateKey : privateKey('x25519', ephemeral);
  const enc = rawPublic(createPublicKey(own));
  const dh = diffieHellman({ privateKey: own, publicKey: publicKey('x25519', recipient) });
  const [key, nonce] = keyAndNonce(dh, label, enc, recipient);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { enc: b64url(enc), ct: b64url(ct) };
}

/** The plaintext (Buffer) of `{enc, ct}` sealed to the X25519 private key `privateRaw`; throws if it does not open. */
export function openSealed(sealed, privateRaw, label, aad) {
  const enc = unb64url(sealed?.enc, 'enc', 32);
  const ct = unb64url(sealed?.ct, 'ct');
  if (ct.length < TAG_BYTES) throw new Error('jobordre: ciphertext too short');
  const own = privateKey('x25519', privateRaw);
  const dh = diffieHellman({ privateKey: own, publicKey: publicKey('x25519', enc) });
  const [key, nonce] = keyAndNonce(dh, label, enc, rawPublic(createPublicKey(own)));
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(ct.subarray(ct.length - TAG_BYTES));
  return Buffer.concat([decipher.update(ct.subarray(0, ct.length - TAG_BYTES)), decipher.final()]);
}

/** A version 2 key file's key: private keys as Buffers, the foundation's public keys. */
export function parseKeyFile(data) {
  const raw = (name, where = data) => unb64url(where[name], name, 32);
  const key = {
    v: VERSION,
    principal: data.principal,
    key_id: data.key_id,
    signPrivate: raw('sign_private'),
    sealPrivate: raw('seal_private'),
    foundation: {
      key_id: data.foundation.key_id,
      signPublic: raw('sign_public', data.foundation),
      sealPublic: raw('seal_public', data.foundation),
    },
  };
  if (b64url(publicOf('ed25519', key.signPrivate)) !== data.sign_public || b64url(publicOf('x25519', key.sealPrivate)) !== data.seal_public) {
    throw new TypeError('jobordre: the key file\'s public keys are not those of its private keys');
  }
  return key;
}

/** `sent_at` in version 2's one form, YYYY-MM-DDTHH:MM:SS.sssZ (what toISOString writes). */
export const formatSentAtV2 = (date) => date.toISOString();

/**
 * A signed version 2 envelope of `key`'s organisation, its whole payload sealed to the
 * foundation. Options: commandId (default: a fresh UUID), correlationId, caseworker,
 * sentAt (a Date), ephemeral (a raw X25519 private key: test vectors only).
 */
export function makeEnvelopeV2(kind, payload, key, options = {}) {
  queueFor(kind);
  const commandId = options.commandId ?? randomUUID();
  const aad = `${key.principal}|${commandId}|${kind}`;
  const envelope = {
    schema_version: VERSION,
    kind,
    command_id: commandId,
    principal: key.principal,
    correlation_id: options.correlationId ?? commandId,
    sent_at: formatSentAtV2(options.sentAt ?? new Date()),
    caseworker: options.caseworker ?? null,
    payload: { sealed: seal(canonical(payload), key.foundation.sealPublic, PAYLOAD_LABEL, aad, options.ephemeral) },
    key_id: key.key_id,
  };
  return { ...envelope, signature: signDocument(envelope, key.signPrivate) };
}

/** The list a version 2 reply is pushed onto: one fixed prefix per principal. */
export const replyKeyV2 = (prefix, principal, commandId) => `${prefix}:replies:${principal}:${commandId}`;

/**
 * The reply `{command_id, ok, result | error}` if `wire` answers the send signed
 * `requestSignature`, signed by the foundation and sealed to this key; `null` for
 * anything else (a forgery, another send's reply, another organisation's).
 */
export function openReplyV2(wire, key, commandId, requestSignature) {
  if (wire === null || typeof wire !== 'object') return null;
  if (wire.v !== VERSION || wire.command_id !== commandId || wire.principal !== key.principal) return null;
  if (wire.key_id !== key.foundation.key_id || wire.in_reply_to !== requestSignature) return null;
  if (!verifies(wire, key.foundation.signPublic)) return null;
  let inner;
  try {
    inner = JSON.parse(openSealed(wire.body, key.sealPrivate, REPLY_LABEL, `${key.principal}|${commandId}|${requestSignature}`).toString('utf8'));
  } catch {
    return null;
  }
  if (inner === null || typeof inner !== 'object' || typeof inner.ok !== 'boolean') return null;
  return { command_id: commandId, ...inner };
}
