package aimesh.clients.bank;

/** Command-line flags of {@link ScoreClient}. */
record Options(String target, long deadlineMs, String model, String tokenFile) {
  static final String USAGE =
      "usage: java -jar aimesh-bank-client.jar [--target host:port] [--deadline-ms N] [--model NAME]"
          + " [--token-file PATH] < payments.jsonl";

  /**
   * Parses {@code --flag value} pairs.
   *
   * @throws IllegalArgumentException on an unknown flag, a missing value or a deadline that is not a
   *     positive integer
   */
  static Options parse(String[] args) {
    String target = "127.0.0.1:50054";
    long deadlineMs = 2000;
    String model = "fraud";
    String tokenFile = null;
    for (int i = 0; i < args.length; i += 2) {
      String flag = args[i];
      if (i + 1 >= args.length) {
        throw new IllegalArgumentException(flag + " needs a value");
      }
      String value = args[i + 1];
      switch (flag) {
        case "--target" -> target = value;
        case "--model" -> model = value;
        case "--deadline-ms" -> deadlineMs = parseDeadline(value);
        case "--token-file" -> tokenFile = value;
        default -> throw new IllegalArgumentException("unknown flag " + flag);
      }
    }
    return new Options(target, deadlineMs, model, tokenFile);
  }

  private static long parseDeadline(String value) {
    long ms;
    try {
      ms = Long.parseLong(value);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("--deadline-ms must be an integer, got " + value, e);
    }
    if (ms <= 0) {
      throw new IllegalArgumentException("--deadline-ms must be positive, got " + value);
    }
    return ms;
  }
}
