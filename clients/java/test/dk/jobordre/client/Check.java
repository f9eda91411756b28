package dk.jobordre.client;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/** A tiny test runner (no JUnit: the JDK alone): named checks, a summary, exit 1 on failure. */
final class Check {
    interface Body {
        void run() throws Exception;
    }

    private final List<String> failures = new ArrayList<>();
    private int passed;

    void test(String name, Body body) {
        try {
            body.run();
            passed++;
            System.out.println("ok " + name);
        } catch (Throwable e) {
            failures.add(name);
            System.out.println("FAIL " + name + ": " + e);
        }
    }

    static void equal(Object expected, Object actual, String what) {
        if (!Objects.equals(expected, actual)) throw new AssertionError(what + ": expected " + expected + ", got " + actual);
    }

    static void that(boolean condition, String what) {
        if (!condition) throw new AssertionError(what);
    }

    void finish() {
        System.out.println("# pass " + passed);
        System.out.println("# fail " + failures.size());
        if (!failures.isEmpty()) System.exit(1);
    }
}
