package dk.jobordre.client;

import java.io.IOException;
import java.security.GeneralSecurityException;
import java.time.Instant;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

/**
 * A jobordre client speaking protocol 2 (docs/protocol.md § 14) with the JDK 17 alone:
 * enqueue a signed command as a Dramatiq message (HSET + RPUSH in one MULTI), wait on the
 * principal's own reply list, believe only a reply the foundation signed for this very
 * send, and open it with the organisation's private key.
 */
public final class Client implements AutoCloseable {
    private final KeyFile key;
    private final String prefix;
    private final String caseworker;
    private final Redis redis;
    /** The signature of each command sent and not yet answered, by command id. */
    private final Map<String, String> sent = new HashMap<>();

    public Client(KeyFile key, String redisUrl, String prefix, String caseworker) throws IOException {
        this.key = key;
        this.prefix = prefix;
        this.caseworker = caseworker;
        this.redis = new Redis(redisUrl);
    }

    public KeyFile key() {
        return key;
    }

    public String replyKey(String commandId) {
        return Envelopes.replyKey(prefix, key.principal(), commandId);
    }

    /** A signed envelope of this client's organisation (a fresh UUID when commandId is null). */
    public Map<String, Object> envelope(String kind, Map<String, Object> payload, String commandId) throws GeneralSecurityException {
        return Envelopes.make(kind, payload, key, commandId, caseworker, Instant.now(), null);
    }

    /** Enqueue an envelope atomically; returns its command id. */
    public String send(Map<String, Object> envelope) throws IOException {
        String kind = (String) envelope.get("kind");
        String queue = "dramatiq:" + Envelopes.queueFor(kind);
        String messageId = UUID.randomUUID().toString();
        Map<String, Object> message = new LinkedHashMap<>();
        message.put("queue_name", Envelopes.queueFor(kind));
        message.put("actor_name", kind);
        message.put("args", List.of(Json.write(envelope)));
        message.put("kwargs", Map.of());
        message.put("options", Map.of("redis_message_id", messageId));
        message.put("message_id", messageId);
        message.put("message_timestamp", System.currentTimeMillis());
        redis.call("MULTI");
        redis.call("HSET", queue + ".msgs", messageId, Json.write(message));
        redis.call("RPUSH", queue, messageId);
        redis.call("EXEC");
        String commandId = (String) envelope.get("command_id");
        sent.put(commandId, (String) envelope.get("signature"));
        return commandId;
    }

    /** Push a raw element onto a reply list: what anyone with Redis access can do (tests). */
    public void push(String list, String element) throws IOException {
        redis.call("RPUSH", list, element);
    }

    /**
     * The result of a sent command; throws {@link JobordreException} with the worker's
     * error, or {@code unavailable} when no authentic reply came in time. Anything else on
     * the list is dropped and the wait goes on.
     */
    @SuppressWarnings("unchecked")
    public Map<String, Object> await(String commandId, long timeoutMs) throws IOException {
        String signature = sent.get(commandId);
        if (signature == null) throw new JobordreException("validation_error", "command " + commandId + " was not sent by this client", "command_id");
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (true) {
            long left = deadline - System.currentTimeMillis();
            if (left <= 0) break;
            Object popped = redis.call("BLPOP", replyKey(commandId), String.valueOf(Math.max(left / 1000.0, 0.01)));
            if (popped == null) continue;
            Object wire;
            try {
                wire = Json.parse((String) ((List<Object>) popped).get(1));
            } catch (RuntimeException e) {
                continue;
            }
            Map<String, Object> body = Envelopes.openReply(wire, key, commandId, signature);
            if (body == null) continue;
            sent.remove(commandId);
            if (Boolean.TRUE.equals(body.get("ok"))) return (Map<String, Object>) body.get("result");
            Map<String, Object> error = (Map<String, Object>) body.get("error");
            throw new JobordreException((String) error.get("code"), (String) error.get("message"), (String) error.get("field"));
        }
        throw new JobordreException("unavailable", "no worker answered command " + commandId + " within " + timeoutMs
                + " ms; resending with the same command id is safe", null);
    }

    /** Send a command and wait for its result. */
    public Map<String, Object> call(String kind, Map<String, Object> payload, long timeoutMs) throws IOException, GeneralSecurityException {
        return await(send(envelope(kind, payload, null)), timeoutMs);
    }

    @Override
    public void close() throws IOException {
        redis.close();
    }
}
