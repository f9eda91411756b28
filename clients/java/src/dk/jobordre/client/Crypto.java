package dk.jobordre.client;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.Signature;
import java.security.spec.PKCS8EncodedKeySpec;
import java.security.spec.X509EncodedKeySpec;
import java.util.Arrays;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.Map;
import javax.crypto.Cipher;
import javax.crypto.KeyAgreement;
import javax.crypto.Mac;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;

/**
 * Protocol 2's cryptography with the JDK 17 alone (docs/protocol.md § 14): Ed25519
 * signatures, X25519 + HKDF-SHA256 + AES-256-GCM seals (the base mode of HPKE with its steps
 * written out), base64url without padding. Raw 32-byte keys become JDK keys through their
 * fixed PKCS#8 / X.509 DER prefixes.
 */
public final class Crypto {
    private Crypto() {}

    /** HKDF salt of every seal: 32 zero bytes (an empty HMAC key is refused by the JDK). */
    public static final byte[] SALT = new byte[32];
    public static final String PAYLOAD_LABEL = "jobordre v2 payload";
    public static final String REPLY_LABEL = "jobordre v2 reply";
    private static final byte[] ED_PRIVATE = hex("302e020100300506032b657004220420");
    private static final byte[] ED_PUBLIC = hex("302a300506032b6570032100");
    private static final byte[] X_PRIVATE = hex("302e020100300506032b656e04220420");
    private static final byte[] X_PUBLIC = hex("302a300506032b656e032100");

    public static String b64url(byte[] bytes) {
        return Base64.getUrlEncoder().withoutPadding().encodeToString(bytes);
    }

    public static byte[] unb64url(Object text, String field) {
        if (!(text instanceof String s) || !s.matches("[A-Za-z0-9_-]*")) {
            throw new IllegalArgumentException("jobordre: " + field + " is not base64url without padding");
        }
        return Base64.getUrlDecoder().decode(s);
    }

    static byte[] hex(String text) {
        byte[] out = new byte[text.length() / 2];
        for (int i = 0; i < out.length; i++) out[i] = (byte) Integer.parseInt(text.substring(2 * i, 2 * i + 2), 16);
        return out;
    }

    static byte[] concat(byte[]... parts) {
        int length = 0;
        for (byte[] part : parts) length += part.length;
        byte[] out = new byte[length];
        int at = 0;
        for (byte[] part : parts) { System.arraycopy(part, 0, out, at, part.length); at += part.length; }
        return out;
    }

    static PrivateKey edPrivate(byte[] seed) throws GeneralSecurityException {
        return KeyFactory.getInstance("Ed25519").generatePrivate(new PKCS8EncodedKeySpec(concat(ED_PRIVATE, seed)));
    }

    static PublicKey edPublic(byte[] raw) throws GeneralSecurityException {
        return KeyFactory.getInstance("Ed25519").generatePublic(new X509EncodedKeySpec(concat(ED_PUBLIC, raw)));
    }

    static PrivateKey xPrivate(byte[] raw) throws GeneralSecurityException {
        return KeyFactory.getInstance("X25519").generatePrivate(new PKCS8EncodedKeySpec(concat(X_PRIVATE, raw)));
    }

    static PublicKey xPublic(byte[] raw) throws GeneralSecurityException {
        return KeyFactory.getInstance("X25519").generatePublic(new X509EncodedKeySpec(concat(X_PUBLIC, raw)));
    }

    /** The raw 32 bytes of a JDK Ed25519 or X25519 public key. */
    static byte[] raw(PublicKey key) {
        byte[] der = key.getEncoded();
        return Arrays.copyOfRange(der, der.length - 32, der.length);
    }

    /** The raw public key of a raw private key ("Ed25519" or "X25519"). */
    public static byte[] publicOf(String curve, byte[] privateRaw) throws GeneralSecurityException {
        // The JDK derives no public key from a private one; a signature or an exchange with
        // a known point would, but the key pair generator seeded with the key is simpler.
        KeyPairGenerator generator = KeyPairGenerator.getInstance(curve);
        generator.initialize(255, new FixedRandom(privateRaw));
        return raw(generator.generateKeyPair().getPublic());
    }

    /** The bytes a signature covers: the RFC 8785 form of every member but {@code signature}. */
    public static byte[] signedBytes(Map<String, Object> document) {
        Map<String, Object> rest = new LinkedHashMap<>(document);
        rest.remove("signature");
        return Json.canonical(rest);
    }

    public static String sign(Map<String, Object> document, byte[] seed) throws GeneralSecurityException {
        Signature signer = Signature.getInstance("Ed25519");
        signer.initSign(edPrivate(seed));
        signer.update(signedBytes(document));
        return b64url(signer.sign());
    }

    public static boolean verifies(Map<String, Object> document, byte[] publicRaw) {
        try {
            if (!(document.get("signature") instanceof String s) || s.length() != 86) return false;
            Signature verifier = Signature.getInstance("Ed25519");
            verifier.initVerify(edPublic(publicRaw));
            verifier.update(signedBytes(document));
            return verifier.verify(unb64url(s, "signature"));
        } catch (GeneralSecurityException | IllegalArgumentException e) {
            return false;
        }
    }

    static byte[] hkdf(byte[] ikm, byte[] info, int length) throws GeneralSecurityException {
        Mac mac = Mac.getInstance("HmacSHA256");
        mac.init(new SecretKeySpec(SALT, "HmacSHA256"));
        byte[] prk = mac.doFinal(ikm);
        mac.init(new SecretKeySpec(prk, "HmacSHA256"));
        byte[] out = new byte[0];
        byte[] block = new byte[0];
        for (int i = 1; out.length < length; i++) {
            mac.update(block);
            mac.update(info);
            mac.update((byte) i);
            block = mac.doFinal();
            out = concat(out, block);
        }
        return Arrays.copyOf(out, length);
    }

    private static byte[][] keyAndNonce(byte[] dh, String label, byte[] enc, byte[] recipient) throws GeneralSecurityException {
        boolean zero = true;
        for (byte b : dh) zero &= b == 0;
        if (zero) throw new GeneralSecurityException("jobordre: all-zero X25519 secret");
        byte[] okm = hkdf(dh, concat(label.getBytes(StandardCharsets.US_ASCII), enc, recipient), 44);
        return new byte[][] {Arrays.copyOf(okm, 32), Arrays.copyOfRange(okm, 32, 44)};
    }

    private static byte[] exchange(PrivateKey own, byte[] peer) throws GeneralSecurityException {
        KeyAgreement agreement = KeyAgreement.getInstance("X25519");
        agreement.init(own);
        agreement.doPhase(xPublic(peer), true);
        return agreement.generateSecret();
    }

    /** {@code {"enc", "ct"}}: plaintext sealed to an X25519 public key; ephemeral only for vectors. */
    public static Map<String, Object> seal(byte[] plaintext, byte[] recipient, String label, String aad, byte[] ephemeral)
            throws GeneralSecurityException {
        byte[] enc;
        PrivateKey own;
        if (ephemeral == null) {
            KeyPair pair = KeyPairGenerator.getInstance("X25519").generateKeyPair();
            own = pair.getPrivate();
            enc = raw(pair.getPublic());
        } else {
            own = xPrivate(ephemeral);
            enc = publicOf("X25519", ephemeral);
        }
        byte[][] kn = keyAndNonce(exchange(own, recipient), label, enc, recipient);
        Cipher cipher = Cipher.getInstance("AES/GCM/NoPadding");
        cipher.init(Cipher.ENCRYPT_MODE, new SecretKeySpec(kn[0], "AES"), new GCMParameterSpec(128, kn[1]));
        cipher.updateAAD(aad.getBytes(StandardCharsets.UTF_8));
        Map<String, Object> sealed = new LinkedHashMap<>();
        sealed.put("enc", b64url(enc));
        sealed.put("ct", b64url(cipher.doFinal(plaintext)));
        return sealed;
    }

    /** The plaintext of {@code {"enc", "ct"}} sealed to the X25519 private key; throws if it does not open. */
    public static byte[] open(Object sealed, byte[] privateRaw, String label, String aad) throws GeneralSecurityException {
        if (!(sealed instanceof Map<?, ?> map)) throw new GeneralSecurityException("jobordre: not a seal");
        byte[] enc = unb64url(map.get("enc"), "enc");
        byte[] ct = unb64url(map.get("ct"), "ct");
        byte[][] kn = keyAndNonce(exchange(xPrivate(privateRaw), enc), label, enc, publicOf("X25519", privateRaw));
        Cipher cipher = Cipher.getInstance("AES/GCM/NoPadding");
        cipher.init(Cipher.DECRYPT_MODE, new SecretKeySpec(kn[0], "AES"), new GCMParameterSpec(128, kn[1]));
        cipher.updateAAD(aad.getBytes(StandardCharsets.UTF_8));
        return cipher.doFinal(ct);
    }

    /** A "random" source that yields one fixed key: how the JDK makes a key pair from it. */
    private static final class FixedRandom extends java.security.SecureRandom {
        private static final long serialVersionUID = 1L;
        private final byte[] bytes;

        FixedRandom(byte[] bytes) {
            this.bytes = bytes.clone();
        }

        @Override
        public void nextBytes(byte[] out) {
            System.arraycopy(bytes, 0, out, 0, out.length);
        }
    }
}
