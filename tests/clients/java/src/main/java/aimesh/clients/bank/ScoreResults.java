package aimesh.clients.bank;

import aimesh.api.inference.v1.Inference.ScoreResponse;
import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonObject;
import io.grpc.Status;

/**
 * The JSON line printed for each payment.
 *
 * <p>Always: {@code request_id} (null when the input had none and no call was made) and
 * {@code status}: {@code "OK"}, a gRPC status code name ({@code "UNAVAILABLE"},
 * {@code "INVALID_ARGUMENT"}, {@code "DEADLINE_EXCEEDED"}, ...), or {@code "INVALID_INPUT"} when the
 * input line itself was unusable and no call was made. On OK: {@code score}, {@code model_name},
 * {@code model_version}, {@code route} (the enum name, e.g. {@code "ROUTE_CHAMPION"}),
 * {@code feature_freshness_seconds}, {@code missing_features}, {@code event_id}, {@code latency_ms}.
 * Otherwise: {@code message} (the status description, with the client-side cause when
 * there is one), and {@code latency_ms} when a call was made.
 */
final class ScoreResults {
  static final Gson GSON = new GsonBuilder().serializeNulls().serializeSpecialFloatingPointValues().create();

  private ScoreResults() {}

  static JsonObject ok(ScoreResponse response, long elapsedNanos) {
    JsonObject line = new JsonObject();
    line.addProperty("request_id", response.getRequestId());
    line.addProperty("status", "OK");
    line.addProperty("score", response.getScore());
    line.addProperty("model_name", response.getModelName());
    line.addProperty("model_version", response.getModelVersion());
    line.addProperty("route", response.getRoute().name());
    line.addProperty("feature_freshness_seconds", response.getFeatureFreshnessSeconds());
    JsonArray missing = new JsonArray();
    response.getMissingFeaturesList().forEach(missing::add);
    line.add("missing_features", missing);
    line.addProperty("event_id", response.getEventId());
    line.addProperty("latency_ms", elapsedNanos / 1e6);
    return line;
  }

  static JsonObject failed(String requestId, Throwable error, long elapsedNanos) {
    Status status = Status.fromThrowable(error);
    String message = status.getDescription();
    Throwable cause = status.getCause();
    if (cause != null) {
      message = message == null ? cause.toString() : message + ": " + cause;
    }
    JsonObject line = error(requestId, status.getCode().name(), message);
    line.addProperty("latency_ms", elapsedNanos / 1e6);
    return line;
  }

  static JsonObject invalidInput(String requestId, String message) {
    return error(requestId, "INVALID_INPUT", message);
  }

  private static JsonObject error(String requestId, String status, String message) {
    JsonObject line = new JsonObject();
    line.addProperty("request_id", requestId);
    line.addProperty("status", status);
    line.addProperty("message", message);
    return line;
  }
}
