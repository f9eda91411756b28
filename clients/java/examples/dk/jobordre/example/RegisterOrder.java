package dk.jobordre.example;

import dk.jobordre.client.Client;
import dk.jobordre.client.JobordreException;
import dk.jobordre.client.Json;
import dk.jobordre.client.KeyFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * Register a job order from ORDER.json and print it as JSON (protocol 2):
 * JOBORDRE_KEY_FILE=jobcentre_101.v2.key JOBORDRE_REDIS_URL=redis://127.0.0.1:6379/0 \
 *   java -cp CLASSES dk.jobordre.example.RegisterOrder ORDER.json
 * Exit 0 with the order, or the CLI's exit code with {"error": {...}}.
 */
public final class RegisterOrder {
    @SuppressWarnings("unchecked")
    public static void main(String[] args) throws Exception {
        KeyFile key = KeyFile.read(Path.of(System.getenv("JOBORDRE_KEY_FILE")));
        Map<String, Object> order = (Map<String, Object>) Json.parse(Files.readString(Path.of(args[0]), StandardCharsets.UTF_8));
        try (Client client = new Client(key, System.getenv("JOBORDRE_REDIS_URL"), "jobordre", null)) {
            System.out.println(Json.write(client.call("register_order", Map.of("order", order), 30_000)));
        } catch (JobordreException e) {
            System.out.println(Json.write(Map.of("error", Map.of("code", e.code(), "message", e.getMessage()))));
            System.exit(switch (e.code()) {
                case "validation_error" -> 2;
                case "forbidden" -> 3;
                case "not_found" -> 4;
                default -> 7;
            });
        }
    }
}
