package dk.jobordre.client;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * JSON for the protocol, with the JDK alone: a parser (objects as {@code LinkedHashMap},
 * arrays as {@code List}, integers as {@code Long} or {@code BigInteger}, other numbers as
 * {@code Double}), a writer, and the RFC 8785 canonical form of the values the protocol
 * uses (docs/protocol.md § 14.5): keys sorted by UTF-16 code units ({@link String#compareTo}
 * orders exactly so), no whitespace, only the mandatory string escapes, non-ASCII as itself.
 * The protocol's envelopes and payloads hold integers only; a fraction is refused rather
 * than written in a form that might differ from ECMAScript's.
 */
public final class Json {
    private Json() {}

    /** The value of a JSON text. */
    public static Object parse(String text) {
        Parser parser = new Parser(text);
        parser.space();
        Object value = parser.value();
        parser.space();
        if (parser.at != text.length()) throw parser.error("text after the value");
        return value;
    }

    /** A JSON text of the value (keys in insertion order). */
    public static String write(Object value) {
        StringBuilder out = new StringBuilder();
        write(value, out, false);
        return out.toString();
    }

    /** The RFC 8785 canonical form of the value, as UTF-8 bytes. */
    public static byte[] canonical(Object value) {
        StringBuilder out = new StringBuilder();
        write(value, out, true);
        return out.toString().getBytes(StandardCharsets.UTF_8);
    }

    @SuppressWarnings("unchecked")
    private static void write(Object value, StringBuilder out, boolean canonical) {
        if (value == null) {
            out.append("null");
        } else if (value instanceof String s) {
            string(s, out);
        } else if (value instanceof Boolean b) {
            out.append(b ? "true" : "false");
        } else if (value instanceof Long || value instanceof Integer || value instanceof BigInteger) {
            out.append(value);
        } else if (value instanceof Double d) {
            if (canonical) throw new IllegalArgumentException("jobordre: the protocol's numbers are integers, not " + d);
            out.append(d);
        } else if (value instanceof Map<?, ?> map) {
            Map<String, Object> members = (Map<String, Object>) map;
            if (canonical) members = new TreeMap<>(members);
            out.append('{');
            boolean first = true;
            for (Map.Entry<String, Object> entry : members.entrySet()) {
                if (!first) out.append(',');
                first = false;
                string(entry.getKey(), out);
                out.append(':');
                write(entry.getValue(), out, canonical);
            }
            out.append('}');
        } else if (value instanceof List<?> list) {
            out.append('[');
            for (int i = 0; i < list.size(); i++) {
                if (i > 0) out.append(',');
                write(list.get(i), out, canonical);
            }
            out.append(']');
        } else {
            throw new IllegalArgumentException("jobordre: not a JSON value: " + value.getClass());
        }
    }

    /** A string as JSON.stringify writes it (the RFC 8785 form). */
    private static void string(String s, StringBuilder out) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
                    else out.append(c);
                }
            }
        }
        out.append('"');
    }

    private static final class Parser {
        final String text;
        int at;

        Parser(String text) {
            this.text = text;
        }

        IllegalArgumentException error(String what) {
            return new IllegalArgumentException("jobordre: not JSON (" + what + " at " + at + ")");
        }

        void space() {
            while (at < text.length() && " \t\r\n".indexOf(text.charAt(at)) >= 0) at++;
        }

        Object value() {
            if (at >= text.length()) throw error("end of text");
            char c = text.charAt(at);
            if (c == '{') return object();
            if (c == '[') return array();
            if (c == '"') return string();
            if (text.startsWith("true", at)) { at += 4; return Boolean.TRUE; }
            if (text.startsWith("false", at)) { at += 5; return Boolean.FALSE; }
            if (text.startsWith("null", at)) { at += 4; return null; }
            return number();
        }

        Map<String, Object> object() {
            Map<String, Object> members = new LinkedHashMap<>();
            at++;
            space();
            if (peek('}')) return members;
            while (true) {
                space();
                if (at >= text.length() || text.charAt(at) != '"') throw error("a member name");
                String name = string();
                space();
                expect(':');
                space();
                members.put(name, value());
                space();
                if (peek('}')) return members;
                expect(',');
            }
        }

        List<Object> array() {
            List<Object> items = new ArrayList<>();
            at++;
            space();
            if (peek(']')) return items;
            while (true) {
                space();
                items.add(value());
                space();
                if (peek(']')) return items;
                expect(',');
            }
        }

        boolean peek(char c) {
            if (at < text.length() && text.charAt(at) == c) { at++; return true; }
            return false;
        }

        void expect(char c) {
            if (!peek(c)) throw error("'" + c + "'");
        }

        String string() {
            StringBuilder out = new StringBuilder();
            at++;
            while (true) {
                if (at >= text.length()) throw error("an unterminated string");
                char c = text.charAt(at++);
                if (c == '"') return out.toString();
                if (c != '\\') { out.append(c); continue; }
                char e = text.charAt(at++);
                switch (e) {
                    case '"', '\\', '/' -> out.append(e);
                    case 'b' -> out.append('\b');
                    case 'f' -> out.append('\f');
                    case 'n' -> out.append('\n');
                    case 'r' -> out.append('\r');
                    case 't' -> out.append('\t');
                    case 'u' -> { out.append((char) Integer.parseInt(text.substring(at, at + 4), 16)); at += 4; }
                    default -> throw error("a bad escape");
                }
            }
        }

        Object number() {
            int start = at;
            while (at < text.length() && "+-0123456789.eE".indexOf(text.charAt(at)) >= 0) at++;
            String digits = text.substring(start, at);
            if (digits.isEmpty()) throw error("a value");
            if (digits.matches("-?\\d+")) {
                BigInteger big = new BigInteger(digits);
                return big.bitLength() < 64 ? (Object) big.longValue() : big;
            }
            return Double.parseDouble(digits);
        }
    }
}
