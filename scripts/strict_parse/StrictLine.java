package s3p;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadFeature;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF1;

/** Experiment (issue 26): one strict pass over a line's UTF-8 bytes: exactly one JSON object, each key once,
 *  each green_trip field with its JSON type kept (a number in a string field is flagged). */
public class StrictLine implements UDF1<byte[], Row> {
    static final JsonFactory FACTORY = JsonFactory.builder().enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();
    static final String[] NAMES = {"event_id", "event_time", "user_id", "city", "mode", "distance_km", "duration_min", "navigation_verified"};
    static final char[] KINDS = {'s', 's', 's', 's', 's', 'd', 'd', 'b'};

    static int index(String name) {
        for (int i = 0; i < NAMES.length; i++) if (NAMES[i].equals(name)) return i;
        return -1;
    }

    public Row call(byte[] line) throws Exception {
        Object[] out = new Object[NAMES.length + 2];  // fields, then malformed (string code), wrong_type (field name)
        try (JsonParser p = FACTORY.createParser(line)) {
            if (p.nextToken() != JsonToken.START_OBJECT) { out[NAMES.length] = "malformed_json"; return RowFactory.create(out); }
            JsonToken t;
            while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
                int i = index(p.currentName());
                JsonToken v = p.nextToken();
                if (i < 0) { p.skipChildren(); continue; }
                if (v == JsonToken.VALUE_NULL) continue;
                char k = KINDS[i];
                if (k == 's' && v == JsonToken.VALUE_STRING) out[i] = p.getText();
                else if (k == 'd' && (v == JsonToken.VALUE_NUMBER_FLOAT || v == JsonToken.VALUE_NUMBER_INT)) out[i] = p.getDoubleValue();
                else if (k == 'b' && (v == JsonToken.VALUE_TRUE || v == JsonToken.VALUE_FALSE)) out[i] = v == JsonToken.VALUE_TRUE;
                else { p.skipChildren(); if (out[NAMES.length + 1] == null) out[NAMES.length + 1] = NAMES[i]; }
            }
            if (t != JsonToken.END_OBJECT || p.nextToken() != null) out[NAMES.length] = "malformed_json:trailing_text";
        } catch (com.fasterxml.jackson.core.JacksonException e) {
            java.util.Arrays.fill(out, null);
            out[NAMES.length] = e.getMessage().startsWith("Duplicate field") ? "duplicate_key" : "malformed_json";
        }
        return RowFactory.create(out);
    }
}
