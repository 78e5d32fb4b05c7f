package io.github.sinkhorn4j.examples;

import io.github.sinkhorn4j.core.Device;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Function;

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

    int integer(String name, int otherwise) {
        return parsed(name, Integer::parseInt, otherwise);
    }

    double number(String name, double otherwise) {
        return parsed(name, Double::parseDouble, otherwise);
    }

    /** Comma-separated numbers, as many as {@code otherwise} holds. */
    double[] doubles(String name, double... otherwise) {
        double[] parsed = parsed(name, v -> Arrays.stream(v.split(",")).mapToDouble(Double::parseDouble).toArray(), otherwise);
        if (parsed.length != otherwise.length) {
            throw new IllegalArgumentException(name + " takes " + otherwise.length + " comma-separated numbers (got "
                    + values.get(name) + ")");
        }
        return parsed;
    }

    /** One of an enum's constants, named in any case. */
    <E extends Enum<E>> E choice(String name, Class<E> type, E otherwise) {
        return parsed(name, v -> Enum.valueOf(type, v.toUpperCase(Locale.ROOT)), otherwise);
    }

    Device device(String name, Device otherwise) {
        return choice(name, Device.class, otherwise);
    }

    Path path(String name, Path otherwise) {
        return parsed(name, Path::of, otherwise);
    }

    private <T> T parsed(String name, Function<String, T> parser, T otherwise) {
        String value = values.get(name);
        if (value == null) return otherwise;
        try {
            return parser.apply(value);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("bad value for " + name + ": " + value, e);
        }
    }
}
