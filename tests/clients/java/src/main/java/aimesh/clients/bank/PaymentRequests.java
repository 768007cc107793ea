package aimesh.clients.bank;

import aimesh.api.common.v1.Common.Value;
import aimesh.api.inference.v1.Inference.ScoreRequest;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParseException;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import java.util.Map;

/**
 * Turns one payment (a JSON object) into a {@link ScoreRequest}.
 *
 * <p>{@code request_id} becomes the request id (absent: empty, the server generates one);
 * {@code card_id} and {@code customer_id} become {@code entity_ids["card"]} and
 * {@code entity_ids["customer"]}; every other field goes into {@code context} under its own name,
 * typed by its JSON type: number as {@code double_value} (so {@code amount} is a double), string as
 * {@code string_value} ({@code timestamp} stays the RFC 3339 string), boolean as {@code bool_value},
 * null as a {@code Value} with no kind. The client checks JSON shape only; the server validates
 * the payment.
 */
final class PaymentRequests {
  private static final Map<String, String> ENTITY_FIELDS = Map.of("card_id", "card", "customer_id", "customer");

  private PaymentRequests() {}

  /** The input line could not be turned into a request; {@link #requestId()} is null when unknown. */
  static final class InvalidPayment extends Exception {
    private final String requestId;

    InvalidPayment(String requestId, String message) {
      super(message);
      this.requestId = requestId;
    }

    String requestId() {
      return requestId;
    }
  }

  /**
   * Builds the request for model {@code model} from one JSON line.
   *
   * @throws InvalidPayment when the line is not a JSON object, or a field is an array or an object,
   *     or request_id / card_id / customer_id is not a string
   */
  static ScoreRequest parse(String line, String model) throws InvalidPayment {
    JsonObject payment;
    try {
      JsonElement parsed = JsonParser.parseString(line);
      if (!parsed.isJsonObject()) {
        throw new InvalidPayment(null, "a payment must be a JSON object, got: " + abbreviate(line));
      }
      payment = parsed.getAsJsonObject();
    } catch (JsonParseException e) {
      throw new InvalidPayment(null, "not valid JSON: " + abbreviate(line));
    }
    String requestId = stringField(payment, "request_id", null);
    ScoreRequest.Builder request = ScoreRequest.newBuilder().setModel(model);
    if (requestId != null) {
      request.setRequestId(requestId);
    }
    for (Map.Entry<String, JsonElement> field : payment.entrySet()) {
      String name = field.getKey();
      if (name.equals("request_id")) {
        continue;
      }
      String entityType = ENTITY_FIELDS.get(name);
      if (entityType != null) {
        request.putEntityIds(entityType, stringField(payment, name, requestId));
      } else {
        request.putContext(name, toValue(name, field.getValue(), requestId));
      }
    }
    return request.build();
  }

  private static String stringField(JsonObject payment, String name, String requestId) throws InvalidPayment {
    JsonElement value = payment.get(name);
    if (value == null || value.isJsonNull()) {
      return null;
    }
    if (!value.isJsonPrimitive() || !value.getAsJsonPrimitive().isString()) {
      throw new InvalidPayment(requestId, name + ": must be a string, got " + value);
    }
    return value.getAsString();
  }

  private static Value toValue(String name, JsonElement element, String requestId) throws InvalidPayment {
    if (element.isJsonNull()) {
      return Value.getDefaultInstance();
    }
    if (!element.isJsonPrimitive()) {
      throw new InvalidPayment(requestId, name + ": must be a number, string, boolean or null, got " + element);
    }
    JsonPrimitive primitive = element.getAsJsonPrimitive();
    if (primitive.isNumber()) {
      return Value.newBuilder().setDoubleValue(primitive.getAsDouble()).build();
    }
    if (primitive.isBoolean()) {
      return Value.newBuilder().setBoolValue(primitive.getAsBoolean()).build();
    }
    return Value.newBuilder().setStringValue(primitive.getAsString()).build();
  }

  private static String abbreviate(String line) {
    return line.length() <= 80 ? line : line.substring(0, 80) + "...";
  }
}
