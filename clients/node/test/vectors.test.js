// The Node client computes exactly what docs/protocol-vectors.json says, byte for byte:
// the file the Python implementation is tested against too (tests/docs/test_vectors.py).

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import {
  canonical, derive, makeEnvelope, open, openReply, replyMac, seal, sealPayload, sign,
} from '../src/index.js';

const VECTORS = JSON.parse(readFileSync(new URL('../../../docs/protocol-vectors.json', import.meta.url), 'utf8'));
const keyOf = (v) => ({ principal: v.principal, key_id: v.key_id, secret: v.secret });

describe('signing vectors', () => {
  for (const v of VECTORS.vectors) {
    it(`${v.name}: the key is the secret's UTF-8 bytes`, () => {
      assert.equal(Buffer.from(v.secret, 'utf8').toString('hex'), v.key_hex);
    });
    it(`${v.name}: canonical form`, () => {
      assert.equal(canonical(v.envelope), v.canonical);
    });
    it(`${v.name}: signature = HMAC-SHA256(key, UTF-8 canonical)`, () => {
      const mac = createHmac('sha256', Buffer.from(v.key_hex, 'hex')).update(Buffer.from(v.canonical, 'utf8')).digest('hex');
      assert.equal(mac, v.signature);
      assert.equal(sign(v.envelope, v.secret), v.signature);
    });
    it(`${v.name}: the client builds the same envelope from the plain payload`, () => {
      const built = makeEnvelope(v.envelope.kind, v.plain_payload, keyOf(v), {
        commandId: v.envelope.command_id,
        correlationId: v.envelope.correlation_id,
        caseworker: v.envelope.caseworker,
        sentAt: new Date(v.envelope.sent_at),
        nonces: v.nonces_hex.map((n) => Buffer.from(n, 'hex')),
      });
      assert.deepEqual(built, v.envelope);
      assert.equal(JSON.stringify(Object.keys(built)), JSON.stringify(Object.keys(v.envelope)));
    });
    it(`${v.name}: a changed field breaks the signature`, () => {
      assert.notEqual(sign({ ...v.envelope, correlation_id: `${v.envelope.correlation_id}x` }, v.secret), v.signature);
    });
  }
});

describe('sealing vectors', () => {
  for (const v of VECTORS.sealing) {
    it(`${v.name}: HKDF key`, () => {
      assert.equal(derive(v.secret, v.info).toString('hex'), v.derived_key_hex);
    });
    it(`${v.name}: AES-256-GCM with the vector nonce`, () => {
      const key = Buffer.from(v.derived_key_hex, 'hex');
      assert.equal(seal(key, v.plaintext, v.aad, Buffer.from(v.nonce_hex, 'hex')), v.sealed.sealed);
      const sealed = sealPayload({ [v.field]: v.value }, v.command_id, v.secret, [Buffer.from(v.nonce_hex, 'hex')]);
      assert.deepEqual(sealed[v.field], v.sealed);
    });
    it(`${v.name}: opens only with its associated data`, () => {
      const key = Buffer.from(v.derived_key_hex, 'hex');
      assert.equal(JSON.parse(open(key, v.sealed.sealed, v.aad)), v.value);
      assert.throws(() => open(key, v.sealed.sealed, `${v.aad}x`));
    });
  }
});

describe('reply vectors', () => {
  for (const v of VECTORS.replies) {
    it(`${v.name}: ${v.valid ? 'believed' : 'dropped'}`, () => {
      const opened = openReply(v.wire, keyOf(v), v.command_id, v.request_signature);
      assert.deepEqual(opened, v.valid ? v.opened : null);
    });
    if (!v.valid) continue;
    it(`${v.name}: MAC and sealed body`, () => {
      assert.equal(derive(v.secret, 'jobordre reply mac v1').toString('hex'), v.mac_key_hex);
      assert.equal(replyMac(v.secret, v.command_id, v.request_signature, v.wire.ok, v.wire.body), v.wire.mac);
      const mac = createHmac('sha256', Buffer.from(v.mac_key_hex, 'hex')).update(v.mac_input, 'utf8').digest('hex');
      assert.equal(mac, v.wire.mac);
      const key = Buffer.from(v.seal_key_hex, 'hex');
      assert.equal(seal(key, v.body_plaintext, v.command_id, Buffer.from(v.nonce_hex, 'hex')), v.wire.body);
    });
    it(`${v.name}: another command's signature does not verify`, () => {
      assert.equal(openReply(v.wire, keyOf(v), v.command_id, '0'.repeat(64)), null);
    });
  }
});

describe('number vectors', () => {
  for (const [text, python] of VECTORS.numbers) {
    it(`${text} is written ${python}`, () => {
      assert.equal(canonical({ n: JSON.parse(text) }), `{"n":${python}}`);
    });
  }
});
