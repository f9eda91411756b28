// docs/protocol-vectors-v2.json holds for this client: every envelope is built again from
// its inputs (RFC 8785 with npm canonicalize, Ed25519 and X25519 from node:crypto) byte for
// byte, every valid reply opens, every invalid one is dropped.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { canonicalV2, makeEnvelopeV2, openReplyV2, openSealed, parseKeyFile, publicOf, verifies } from '../src/index.js';
import { b64url, unb64url } from '../src/v2.js';

const VECTORS = JSON.parse(readFileSync(new URL('../../../docs/protocol-vectors-v2.json', import.meta.url), 'utf8'));
const F = VECTORS.foundation;

function keyOf(principal) {
  const data = VECTORS.organisations.find((o) => o.principal === principal);
  return parseKeyFile({ v: 2, ...data, foundation: { key_id: F.key_id, sign_public: F.sign_public, seal_public: F.seal_public } });
}

describe('protocol 2 vectors', () => {
  it('has public keys that are those of the private keys', () => {
    assert.equal(b64url(publicOf('ed25519', unb64url(F.sign_private))), F.sign_public);
    assert.equal(b64url(publicOf('x25519', unb64url(F.seal_private))), F.seal_public);
  });

  for (const vector of VECTORS.canonical) {
    it(`canonical: ${vector.name}`, () => {
      assert.equal(canonicalV2(vector.value).toString('utf8'), vector.canonical);
    });
  }

  for (const vector of VECTORS.envelopes) {
    it(`envelope built from its inputs: ${vector.name}`, () => {
      const key = keyOf(vector.principal);
      const { inputs } = vector;
      const made = makeEnvelopeV2(inputs.kind, inputs.opened_payload, key, {
        commandId: inputs.command_id,
        correlationId: inputs.correlation_id,
        caseworker: inputs.caseworker,
        sentAt: new Date(inputs.sent_at),
        ephemeral: unb64url(vector.payload_seal.ephemeral_private),
      });
      assert.deepEqual(made, vector.envelope);
      const { signature, ...signed } = made;
      assert.equal(canonicalV2(signed).toString('utf8'), vector.canonical);
      assert.ok(verifies(made, unb64url(VECTORS.organisations.find((o) => o.principal === vector.principal).sign_public)));
    });

    it(`envelope opens for the foundation: ${vector.name}`, () => {
      const opened = openSealed(vector.envelope.payload.sealed, unb64url(F.seal_private), VECTORS.hkdf.payload_label, vector.payload_aad);
      assert.deepEqual(JSON.parse(opened.toString('utf8')), vector.inputs.opened_payload);
    });
  }

  for (const vector of VECTORS.replies) {
    it(`reply ${vector.valid ? 'opens' : 'is dropped'}: ${vector.name}`, () => {
      const reply = openReplyV2(vector.wire, keyOf(vector.principal), vector.command_id, vector.request_signature);
      if (vector.valid) {
        assert.deepEqual(reply, { command_id: vector.command_id, ...vector.opened });
      } else {
        assert.equal(reply, null);
      }
    });
  }
});
