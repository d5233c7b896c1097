package scope3plus;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadFeature;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF3;

/**
 * The gate's strict parse of a bronze line (scope3plus/strictline.py): one pass of Jackson over the line's
 * UTF-8 bytes, with the contract's fields and types as arguments.
 *
 * <p>call(line, names, kinds) returns struct&lt;clean boolean, f struct&lt;fields..., _corrupt_record&gt;&gt;.
 * {@code clean} is true only for a line that is exactly one JSON object (white space after it at most), with
 * no key twice at any depth, and each contract field either absent, null, or of its contract's JSON type:
 * a string for kind 's', a number for 'd', an integer that fits 64 bits for 'l', true or false for 'b'. Then
 * {@code f} holds the fields as Spark's JSON reader reads them into the contract's typed schema. Any other
 * line is not clean ({@code f} is null): the gate checks it the exact way, so this class only has to be sure
 * when it says clean, never complete.
 *
 * <p>{@code names}: the contract's field names, joined with commas; {@code kinds}: one letter per field.
 */
public class StrictLine implements UDF3<byte[], String, String, Row> {
    private static final long serialVersionUID = 1L;
    private static final JsonFactory FACTORY =
            JsonFactory.builder().enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION).build();
    private static final Row NOT_CLEAN = RowFactory.create(false, null);

    private transient String cachedNames;
    private transient String[] names;

    private int index(String name) {
        for (int i = 0; i < names.length; i++) if (names[i].equals(name)) return i;
        return -1;
    }

    /** Jackson picks the encoding of a byte array from its first four bytes (a byte-order mark, or zero bytes
     *  for UTF-16 and UTF-32): a clean line starts with '{' and no zero byte, so it is read as UTF-8. */
    private static boolean readAsUtf8(byte[] line) {
        if (line.length < 2 || line[0] != '{') return false;
        for (int i = 1; i < Math.min(4, line.length); i++) if (line[i] == 0) return false;
        return true;
    }

    @Override
    public Row call(byte[] line, String joinedNames, String kinds) throws Exception {
        if (line == null || !readAsUtf8(line)) return NOT_CLEAN;
        if (!joinedNames.equals(cachedNames)) {
            names = joinedNames.split(",", -1);
            cachedNames = joinedNames;
        }
        Object[] values = new Object[names.length + 1];  // the fields, then the corrupt-record column (null)
        try (JsonParser p = FACTORY.createParser(line)) {
            if (p.nextToken() != JsonToken.START_OBJECT) return NOT_CLEAN;
            JsonToken t;
            while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
                int i = index(p.currentName());
                JsonToken v = p.nextToken();
                if (i < 0) {
                    p.skipChildren();  // a key the contract does not have (its duplicates are still detected)
                    continue;
                }
                if (v == JsonToken.VALUE_NULL) continue;
                switch (kinds.charAt(i)) {
                    case 's':
                        if (v != JsonToken.VALUE_STRING) return NOT_CLEAN;
                        values[i] = p.getText();
                        break;
                    case 'd':
                        if (v != JsonToken.VALUE_NUMBER_FLOAT && v != JsonToken.VALUE_NUMBER_INT) return NOT_CLEAN;
                        values[i] = p.getDoubleValue();
                        break;
                    case 'l':
                        if (v != JsonToken.VALUE_NUMBER_INT) return NOT_CLEAN;
                        JsonParser.NumberType type = p.getNumberType();
                        if (type != JsonParser.NumberType.INT && type != JsonParser.NumberType.LONG) return NOT_CLEAN;
                        values[i] = p.getLongValue();
                        break;
                    case 'b':
                        if (v != JsonToken.VALUE_TRUE && v != JsonToken.VALUE_FALSE) return NOT_CLEAN;
                        values[i] = v == JsonToken.VALUE_TRUE;
                        break;
                    default:
                        throw new IllegalArgumentException("unknown field kind " + kinds.charAt(i));
                }
            }
            if (t != JsonToken.END_OBJECT || p.nextToken() != null) return NOT_CLEAN;
        } catch (JacksonException e) {  // not JSON, a key twice, text after the object: the exact path says which
            return NOT_CLEAN;
        }
        return RowFactory.create(true, RowFactory.create(values));
    }
}
