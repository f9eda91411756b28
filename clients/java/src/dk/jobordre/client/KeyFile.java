package dk.jobordre.client;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.util.Arrays;
import java.util.Map;

/**
 * An organisation's protocol 2 key file ({@code jobordre keys create ORG --protocol 2},
 * docs/protocol.md § 14.2): its private keys and the foundation's public keys.
 */
public record KeyFile(
        String principal,
        String keyId,
        byte[] signPrivate,
        byte[] sealPrivate,
        String foundationKeyId,
        byte[] foundationSignPublic,
        byte[] foundationSealPublic) {

    /** Read a key file; refuses a version 1 file or one whose public keys do not match. */
    public static KeyFile read(Path path) throws IOException, GeneralSecurityException {
        return parse(Files.readString(path, StandardCharsets.UTF_8));
    }

    @SuppressWarnings("unchecked")
    public static KeyFile parse(String text) throws GeneralSecurityException {
        Map<String, Object> data = (Map<String, Object>) Json.parse(text);
        if (!Long.valueOf(2).equals(data.get("v"))) {
            throw new IllegalArgumentException("jobordre: not a version 2 key file (\"v\": 2)");
        }
        Map<String, Object> foundation = (Map<String, Object>) data.get("foundation");
        KeyFile key = new KeyFile(
                (String) data.get("principal"),
                (String) data.get("key_id"),
                Crypto.unb64url(data.get("sign_private"), "sign_private"),
                Crypto.unb64url(data.get("seal_private"), "seal_private"),
                (String) foundation.get("key_id"),
                Crypto.unb64url(foundation.get("sign_public"), "foundation.sign_public"),
                Crypto.unb64url(foundation.get("seal_public"), "foundation.seal_public"));
        if (!Arrays.equals(Crypto.publicOf("Ed25519", key.signPrivate), Crypto.unb64url(data.get("sign_public"), "sign_public"))
                || !Arrays.equals(Crypto.publicOf("X25519", key.sealPrivate), Crypto.unb64url(data.get("seal_public"), "seal_public"))) {
            throw new IllegalArgumentException("jobordre: the key file's public keys are not those of its private keys");
        }
        return key;
    }
}
