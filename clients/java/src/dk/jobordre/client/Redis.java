package dk.jobordre.client;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/** The few Redis commands the client needs, over RESP with the JDK alone. */
final class Redis implements AutoCloseable {
    private final Socket socket;
    private final InputStream in;
    private final OutputStream out;

    /** Connect to {@code redis://[:password@]host:port[/db]}. */
    Redis(String url) throws IOException {
        URI uri = URI.create(url);
        if (!"redis".equals(uri.getScheme())) throw new IllegalArgumentException("jobordre: only redis:// URLs: " + url);
        socket = new Socket(uri.getHost(), uri.getPort() > 0 ? uri.getPort() : 6379);
        in = new BufferedInputStream(socket.getInputStream());
        out = socket.getOutputStream();
        String info = uri.getUserInfo();
        if (info != null && !info.isEmpty()) {
            int colon = info.indexOf(':');
            if (colon > 0) call("AUTH", info.substring(0, colon), info.substring(colon + 1));
            else call("AUTH", info.substring(colon + 1));
        }
        String path = uri.getPath();
        if (path != null && path.length() > 1) call("SELECT", path.substring(1));
    }

    /** Send one command and read its answer (strings, longs, lists, or null). */
    synchronized Object call(String... args) throws IOException {
        ByteArrayOutputStream buffer = new ByteArrayOutputStream();
        buffer.write(("*" + args.length + "\r\n").getBytes(StandardCharsets.US_ASCII));
        for (String arg : args) {
            byte[] bytes = arg.getBytes(StandardCharsets.UTF_8);
            buffer.write(("$" + bytes.length + "\r\n").getBytes(StandardCharsets.US_ASCII));
            buffer.write(bytes);
            buffer.write("\r\n".getBytes(StandardCharsets.US_ASCII));
        }
        out.write(buffer.toByteArray());
        out.flush();
        return read();
    }

    private Object read() throws IOException {
        int type = in.read();
        String line = line();
        switch (type) {
            case '+': return line;
            case '-': throw new IOException("redis: " + line);
            case ':': return Long.parseLong(line);
            case '$': {
                int length = Integer.parseInt(line);
                if (length < 0) return null;
                byte[] data = in.readNBytes(length + 2);
                return new String(data, 0, length, StandardCharsets.UTF_8);
            }
            case '*': {
                int count = Integer.parseInt(line);
                if (count < 0) return null;
                List<Object> items = new ArrayList<>();
                for (int i = 0; i < count; i++) items.add(read());
                return items;
            }
            default: throw new IOException("redis: unexpected reply type " + type);
        }
    }

    private String line() throws IOException {
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        int c;
        while ((c = in.read()) != '\r') {
            if (c < 0) throw new IOException("redis: connection closed");
            line.write(c);
        }
        in.read();
        return line.toString(StandardCharsets.UTF_8);
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
