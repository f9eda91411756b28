// The jobordre reference client for Node.js (docs/protocol.md).
export { canonical, pythonFloat, pythonJson } from './canonical.js';
export { derive, open, openReply, replyMac, seal, sealPayload, sign, SEALED_FIELDS } from './crypto.js';
export { formatSentAt, KINDS, makeEnvelope, queueFor, SCHEMA_VERSION, WRITE_KINDS } from './envelope.js';
export { Client, dramatiqMessage, JobordreError, readKeyFile } from './client.js';
export {
  canonical as canonicalV2, formatSentAtV2, makeEnvelopeV2, openReplyV2, openSealed, parseKeyFile,
  publicOf, replyKeyV2, seal as sealV2, signDocument, signedBytes, verifies, VERSION as V2,
} from './v2.js';
