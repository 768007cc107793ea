package aimesh.clients.bank;

import aimesh.api.inference.v1.InferenceServiceGrpc;
import aimesh.api.inference.v1.Inference.ScoreRequest;
import com.google.gson.JsonObject;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.stub.MetadataUtils;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * A bank's payment backend: scores each payment read from stdin with {@code InferenceService.Score}.
 *
 * <p>Input: one JSON object per line on stdin (see {@link PaymentRequests}); blank lines are skipped.
 * Output: exactly one JSON line on stdout per input line, in input order, flushed at once (see
 * {@link ScoreResults}). Calls are made one at a time, each with its own deadline. Neither a bad
 * input line nor a failed call stops the stream: both produce an error line and the client goes on
 * to the next payment. Exit status: 0 at the end of stdin, 2 on bad command-line flags.
 *
 * <p>Flags: {@code --target host:port} (default 127.0.0.1:50054), {@code --deadline-ms N} (default
 * 2000), {@code --model NAME} (default fraud), {@code --token-file PATH} (a bearer token sent as {@code
 * authorization: Bearer <token>} on every call, as aimesh services with authentication on require;
 * none when absent).
 */
public final class ScoreClient {
  private ScoreClient() {}

  public static void main(String[] args) throws IOException, InterruptedException {
    Options options;
    try {
      options = Options.parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println("error: " + e.getMessage());
      System.err.println(Options.USAGE);
      System.exit(2);
      return;
    }
    PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
    ManagedChannel channel = ManagedChannelBuilder.forTarget(options.target()).usePlaintext().build();
    try {
      InferenceServiceGrpc.InferenceServiceBlockingStub stub = InferenceServiceGrpc.newBlockingStub(channel);
      if (options.tokenFile() != null) {
        Metadata headers = new Metadata();
        String token = Files.readString(Path.of(options.tokenFile()), StandardCharsets.UTF_8).strip();
        headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + token);
        stub = stub.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers));
      }
      BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
      for (String line = in.readLine(); line != null; line = in.readLine()) {
        if (line.isBlank()) {
          continue;
        }
        out.println(ScoreResults.GSON.toJson(scoreOne(stub, options, line)));
        out.flush();
      }
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  /** Parses one input line, calls Score with the deadline, and describes the outcome; never throws. */
  static JsonObject scoreOne(
      InferenceServiceGrpc.InferenceServiceBlockingStub stub, Options options, String line) {
    ScoreRequest request;
    try {
      request = PaymentRequests.parse(line, options.model());
    } catch (PaymentRequests.InvalidPayment e) {
      return ScoreResults.invalidInput(e.requestId(), e.getMessage());
    }
    long started = System.nanoTime();
    try {
      var response =
          stub.withDeadlineAfter(options.deadlineMs(), TimeUnit.MILLISECONDS).score(request);
      return ScoreResults.ok(response, System.nanoTime() - started);
    } catch (RuntimeException e) {
      return ScoreResults.failed(request.getRequestId(), e, System.nanoTime() - started);
    }
  }
}
