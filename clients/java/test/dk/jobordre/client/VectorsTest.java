package dk.jobordre.client;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * docs/protocol-vectors-v2.json holds for the Java client: every envelope is built again
 * from its inputs byte for byte, every valid reply opens, every invalid one is dropped.
 * Run: java -cp CLASSES dk.jobordre.client.VectorsTest docs/protocol-vectors-v2.json
 */
public final class VectorsTest {
    @SuppressWarnings("unchecked")
    public static void main(String[] args) throws Exception {
        Map<String, Object> vectors = (Map<String, Object>) Json.parse(Files.readString(Path.of(args[0]), StandardCharsets.UTF_8));
        Map<String, Object> f = (Map<String, Object>) vectors.get("foundation");
        Check check = new Check();
        check.test("the foundation's public keys are those of its private keys", () -> {
            Check.equal(f.get("sign_public"), Crypto.b64url(Crypto.publicOf("Ed25519", Crypto.unb64url(f.get("sign_private"), "s"))), "sign");
            Check.equal(f.get("seal_public"), Crypto.b64url(Crypto.publicOf("X25519", Crypto.unb64url(f.get("seal_private"), "s"))), "seal");
        });
        for (Object item : (List<Object>) vectors.get("canonical")) {
            Map<String, Object> vector = (Map<String, Object>) item;
            check.test("canonical: " + vector.get("name"), () ->
                    Check.equal(vector.get("canonical"), new String(Json.canonical(vector.get("value")), StandardCharsets.UTF_8), "canonical"));
        }
        for (Object item : (List<Object>) vectors.get("envelopes")) {
            Map<String, Object> vector = (Map<String, Object>) item;
            check.test("envelope built from its inputs: " + vector.get("name"), () -> {
                KeyFile key = keyOf(vectors, (String) vector.get("principal"));
                Map<String, Object> inputs = (Map<String, Object>) vector.get("inputs");
                Map<String, Object> seal = (Map<String, Object>) vector.get("payload_seal");
                Map<String, Object> made = Envelopes.make(
                        (String) inputs.get("kind"), (Map<String, Object>) inputs.get("opened_payload"), key,
                        (String) inputs.get("command_id"), (String) inputs.get("caseworker"),
                        Instant.parse((String) inputs.get("sent_at")), Crypto.unb64url(seal.get("ephemeral_private"), "e"));
                Check.equal(Json.write(vector.get("envelope")), Json.write(made), "envelope");
                Check.equal(vector.get("canonical"), new String(Crypto.signedBytes(made), StandardCharsets.UTF_8), "canonical");
                Check.that(Crypto.verifies(made, Crypto.publicOf("Ed25519", key.signPrivate())), "signature verifies");
            });
            check.test("envelope opens for the foundation: " + vector.get("name"), () -> {
                Map<String, Object> envelope = (Map<String, Object>) vector.get("envelope");
                byte[] plain = Crypto.open(((Map<String, Object>) envelope.get("payload")).get("sealed"),
                        Crypto.unb64url(f.get("seal_private"), "s"), Crypto.PAYLOAD_LABEL, (String) vector.get("payload_aad"));
                Check.equal(vector.get("payload_plaintext"), new String(plain, StandardCharsets.UTF_8), "opened");
            });
        }
        for (Object item : (List<Object>) vectors.get("replies")) {
            Map<String, Object> vector = (Map<String, Object>) item;
            boolean valid = Boolean.TRUE.equals(vector.get("valid"));
            check.test("reply " + (valid ? "opens" : "is dropped") + ": " + vector.get("name"), () -> {
                Map<String, Object> body = Envelopes.openReply(vector.get("wire"), keyOf(vectors, (String) vector.get("principal")),
                        (String) vector.get("command_id"), (String) vector.get("request_signature"));
                if (valid) Check.equal(new String(Json.canonical(vector.get("opened")), StandardCharsets.UTF_8),
                        body == null ? null : new String(Json.canonical(body), StandardCharsets.UTF_8), "opened");
                else Check.equal(null, body, "dropped");
            });
        }
        check.finish();
    }

    @SuppressWarnings("unchecked")
    static KeyFile keyOf(Map<String, Object> vectors, String principal) throws Exception {
        Map<String, Object> f = (Map<String, Object>) vectors.get("foundation");
        for (Object item : (List<Object>) vectors.get("organisations")) {
            Map<String, Object> data = (Map<String, Object>) item;
            if (!principal.equals(data.get("principal"))) continue;
            Map<String, Object> file = new LinkedHashMap<>(data);
            file.put("v", 2L);
            file.put("foundation", Map.of("key_id", f.get("key_id"), "sign_public", f.get("sign_public"), "seal_public", f.get("seal_public")));
            return KeyFile.parse(Json.write(file));
        }
        throw new IllegalArgumentException(principal);
    }
}
