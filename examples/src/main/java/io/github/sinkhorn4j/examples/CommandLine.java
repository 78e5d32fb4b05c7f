package io.github.sinkhorn4j.examples;

import io.github.sinkhorn4j.core.Device;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** Options of the form {@code --name value}, checked against the names an example knows. */
final class CommandLine {
    private final Map<String, String> values;

    private CommandLine(Map<String, String> values) {
        this.values = values;
    }

    static CommandLine parse(String[] args, String... names) {
        List<String> known = List.of(names);
        Map<String, String> values = new HashMap<>();
        for (int i = 0; i < args.length; i += 2) {
            if (!known.contains(args[i])) {
                throw new IllegalArgumentException("unknown option " + args[i] + " (options: " + String.join(" ", names) + ")");
            }
            if (i + 1 == args.length) throw new IllegalArgumentException("option " + args[i] + " needs a value");
            values.put(args[i], args[i + 1]);
        }
        return new CommandLine(values);
    }

    String text(String name, String otherwise) {
        return values.getOrDefault(name, otherwise);
    }

    int integer(String name, int otherwise) {
        return values.containsKey(name) ? Integer.parseInt(values.get(name)) : otherwise;
    }

    double number(String name, double otherwise) {
        return values.containsKey(name) ? Double.parseDouble(values.get(name)) : otherwise;
    }

    /** Comma-separated numbers, as many as {@code otherwise} holds. */
    double[] doubles(String name, double... otherwise) {
        if (!values.containsKey(name)) return otherwise;
        double[] parsed = Arrays.stream(values.get(name).split(",")).mapToDouble(Double::parseDouble).toArray();
        if (parsed.length != otherwise.length) {
            throw new IllegalArgumentException(name + " takes " + otherwise.length + " comma-separated numbers (got "
                    + values.get(name) + ")");
        }
        return parsed;
    }

    Device device(String name, Device otherwise) {
        return values.containsKey(name) ? Device.valueOf(values.get(name).toUpperCase(Locale.ROOT)) : otherwise;
    }

    Path path(String name, Path otherwise) {
        return values.containsKey(name) ? Path.of(values.get(name)) : otherwise;
    }
}
