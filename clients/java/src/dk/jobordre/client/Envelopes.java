package dk.jobordre.client;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.temporal.ChronoUnit;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.UUID;

/** Protocol 2 envelopes and replies (docs/protocol.md § 14.4–14.7). */
public final class Envelopes {
    private Envelopes() {}

    /** Kinds that change the store: they travel on jobordre.commands. */
    public static final Set<String> WRITE_KINDS = Set.of(
            "register_order", "update_order", "change_order_status", "register_placement",
            "change_placement_status", "take_order", "release_order", "expire_orders", "follow",
            "unfollow", "anonymise_placements");
    public static final Set<String> READ_KINDS = Set.of(
            "search_orders", "get_order", "order_changes", "placement_log", "inbox", "following",
            "audit_person", "command_result");
    /** {@code sent_at}'s one form: UTC, milliseconds, Z. */
    private static final DateTimeFormatter SENT_AT =
            DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'").withZone(ZoneOffset.UTC);

    public static String queueFor(String kind) {
        if (WRITE_KINDS.contains(kind)) return "jobordre.commands";
        if (READ_KINDS.contains(kind)) return "jobordre.queries";
        throw new IllegalArgumentException("jobordre: unknown command kind " + kind);
    }

    public static String sentAt(Instant moment) {
        return SENT_AT.format(moment.truncatedTo(ChronoUnit.MILLIS));
    }

    /**
     * A signed envelope: the whole payload sealed to the foundation. {@code commandId} null
     * for a fresh UUID; {@code ephemeral} null but for test vectors.
     */
    public static Map<String, Object> make(
            String kind, Map<String, Object> payload, KeyFile key, String commandId, String caseworker,
            Instant sentAt, byte[] ephemeral) throws GeneralSecurityException {
        queueFor(kind);
        String id = commandId != null ? commandId : UUID.randomUUID().toString();
        String aad = key.principal() + "|" + id + "|" + kind;
        Map<String, Object> envelope = new LinkedHashMap<>();
        envelope.put("schema_version", 2L);
        envelope.put("kind", kind);
        envelope.put("command_id", id);
        envelope.put("principal", key.principal());
        envelope.put("correlation_id", id);
        envelope.put("sent_at", sentAt(sentAt != null ? sentAt : Instant.now()));
        envelope.put("caseworker", caseworker);
        envelope.put("payload", Map.of("sealed",
                Crypto.seal(Json.canonical(payload), key.foundationSealPublic(), Crypto.PAYLOAD_LABEL, aad, ephemeral)));
        envelope.put("key_id", key.keyId());
        envelope.put("signature", Crypto.sign(envelope, key.signPrivate()));
        return envelope;
    }

    /** The list a reply is pushed onto: one fixed prefix per principal. */
    public static String replyKey(String prefix, String principal, String commandId) {
        return prefix + ":replies:" + principal + ":" + commandId;
    }

    /**
     * The opened reply body ({@code {"ok", "result" | "error"}}) if {@code wire} answers the
     * send signed {@code requestSignature}, signed by the foundation and sealed to this key;
     * null for anything else (drop it and keep waiting).
     */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> openReply(Object wireValue, KeyFile key, String commandId, String requestSignature) {
        if (!(wireValue instanceof Map<?, ?> raw)) return null;
        Map<String, Object> wire = (Map<String, Object>) raw;
        if (!Long.valueOf(2).equals(wire.get("v")) || !commandId.equals(wire.get("command_id"))
                || !key.principal().equals(wire.get("principal")) || !key.foundationKeyId().equals(wire.get("key_id"))
                || !requestSignature.equals(wire.get("in_reply_to"))
                || !Crypto.verifies(wire, key.foundationSignPublic())) {
            return null;
        }
        try {
            String aad = key.principal() + "|" + commandId + "|" + requestSignature;
            byte[] plain = Crypto.open(wire.get("body"), key.sealPrivate(), Crypto.REPLY_LABEL, aad);
            Object inner = Json.parse(new String(plain, StandardCharsets.UTF_8));
            if (inner instanceof Map<?, ?> body && body.get("ok") instanceof Boolean) return (Map<String, Object>) body;
        } catch (GeneralSecurityException | RuntimeException e) {
            return null;
        }
        return null;
    }
}
