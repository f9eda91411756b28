package dk.jobordre.client;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The Java client against real jobordre workers on a real Redis, run by the project's pytest
 * suite (tests/clients/test_java_client.py), which starts redis-server and a worker and sets
 * JOBORDRE_REDIS_URL, JOBORDRE_KEY_FILE (a version 2 key file) and JOBORDRE_TEST_ORDER_FILE.
 */
public final class WorkersTest {
    private static final String CPR = "0101901234";
    private static final long TIMEOUT_MS = 20_000;

    @SuppressWarnings("unchecked")
    public static void main(String[] args) throws Exception {
        String url = System.getenv("JOBORDRE_REDIS_URL");
        KeyFile key = KeyFile.read(Path.of(System.getenv("JOBORDRE_KEY_FILE")));
        Map<String, Object> order = (Map<String, Object>) Json.parse(
                Files.readString(Path.of(System.getenv("JOBORDRE_TEST_ORDER_FILE")), StandardCharsets.UTF_8));
        Check check = new Check();
        try (Client client = new Client(key, url, "jobordre", "java.test")) {
            AtomicReference<Map<String, Object>> registered = new AtomicReference<>();
            check.test("registers an order", () -> {
                registered.set(client.call("register_order", Map.of("order", order), TIMEOUT_MS));
                Check.equal("processing", registered.get().get("status"), "status");
                Check.equal(key.principal(), registered.get().get("registered_by"), "registered_by");
            });
            long id = (Long) registered.get().get("id");
            check.test("places a person, the whole payload sealed", () -> {
                Map<String, Object> envelope = client.envelope("register_placement", Map.of("order_id", id, "cpr", CPR, "note", "Første samtale"), null);
                Check.that(!Json.write(envelope).contains(CPR), "no CPR in clear on the queue");
                Map<String, Object> placement = client.await(client.send(envelope), TIMEOUT_MS);
                Check.equal(CPR, placement.get("cpr"), "cpr");
                Check.equal("Første samtale", placement.get("note"), "note");
            });
            check.test("answers a resend with the stored result, the CPR in the one masked form", () -> {
                String commandId = java.util.UUID.randomUUID().toString();
                Map<String, Object> payload = Map.of("order_id", id, "cpr", "0102031239");
                Map<String, Object> first = client.await(client.send(client.envelope("register_placement", payload, commandId)), TIMEOUT_MS);
                Map<String, Object> again = client.await(client.send(client.envelope("register_placement", payload, commandId)), TIMEOUT_MS);
                Check.equal(first.get("id"), again.get("id"), "applied once");
                Check.equal(null, again.get("cpr"), "cpr");
                Check.equal(Boolean.TRUE, again.get("masked"), "masked");
            });
            check.test("reads the placement log and the inbox", () -> {
                Map<String, Object> log = client.call("placement_log", Map.of("order_id", id), TIMEOUT_MS);
                Check.equal(2, ((List<Object>) log.get("placements")).size(), "placements");
                Map<String, Object> inbox = client.call("inbox", Map.of("since", "0", "headers_only", true), TIMEOUT_MS);
                Check.that(!((List<Object>) inbox.get("events")).isEmpty(), "events");
            });
            check.test("reports a rejection with its code", () -> {
                try {
                    client.call("get_order", Map.of("order_id", id + 100_000), TIMEOUT_MS);
                    throw new AssertionError("no error");
                } catch (JobordreException e) {
                    Check.equal("not_found", e.code(), "code");
                }
            });
            check.test("is told which field is wrong in a signed command of a refused form", () -> {
                Map<String, Object> envelope = client.envelope("get_order", Map.of("order_id", id), null);
                envelope.put("principal", key.principal().toUpperCase());
                envelope.put("signature", Crypto.sign(envelope, key.signPrivate()));
                try {
                    client.await(client.send(envelope), TIMEOUT_MS);
                    throw new AssertionError("no error");
                } catch (JobordreException e) {
                    Check.equal("validation_error", e.code(), "code");
                    Check.equal("principal", e.field(), "field");
                }
            });
            check.test("drops a forged reply pushed ahead of the real one", () -> {
                Map<String, Object> envelope = client.envelope("get_order", Map.of("order_id", id), null);
                String commandId = (String) envelope.get("command_id");
                String forged = "{\"v\":2,\"command_id\":\"" + commandId + "\",\"principal\":\"" + key.principal()
                        + "\",\"in_reply_to\":\"" + envelope.get("signature") + "\",\"key_id\":\"" + key.foundationKeyId()
                        + "\",\"body\":{\"enc\":\"AAAA\",\"ct\":\"AAAA\"},\"signature\":\"" + "A".repeat(86) + "\"}";
                client.push(client.replyKey(commandId), forged);
                Map<String, Object> result = client.await(client.send(envelope), TIMEOUT_MS);
                Check.equal(registered.get().get("title"), result.get("title"), "the real reply");
            });
        }
        check.finish();
    }
}
