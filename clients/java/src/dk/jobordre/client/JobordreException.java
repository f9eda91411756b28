package dk.jobordre.client;

/** An error the worker reported ({@code code} as in docs/protocol.md § 10), or {@code unavailable}. */
public final class JobordreException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final String code;
    private final String field;

    public JobordreException(String code, String message, String field) {
        super(message);
        this.code = code;
        this.field = field;
    }

    public String code() {
        return code;
    }

    /** The field at fault, or null. */
    public String field() {
        return field;
    }
}
