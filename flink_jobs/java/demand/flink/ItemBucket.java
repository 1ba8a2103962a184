package demand.flink;

import org.apache.flink.table.functions.ScalarFunction;

/**
 * ITEM_BUCKET(line, buckets): the bucket (0 .. buckets-1, as a string) of a raw record's item_id, the key of the
 * job's Python state. The item_id is the first "item_id" member in the text (direct events and DMS envelopes
 * alike) with its JSON escapes decoded, so "caf\u00e9" and "café" share a bucket whichever producer escaped it;
 * a record without one goes to the bucket of "". A scan, because JSON_VALUE parses the whole record per call
 * (~4 us) and a regular expression cannot decode escapes. The hash is String.hashCode, fixed by the Java spec.
 */
public class ItemBucket extends ScalarFunction {

    private static final long serialVersionUID = 1L;
    private static final String MEMBER = "\"item_id\"";

    public String eval(String line, Integer buckets) {
        return String.valueOf(Math.floorMod(itemId(line).hashCode(), buckets));
    }

    static String itemId(String line) {
        if (line == null) {
            return "";
        }
        for (int at = line.indexOf(MEMBER); at >= 0; at = line.indexOf(MEMBER, at + 1)) {
            int i = skipSpace(line, at + MEMBER.length());
            if (i < line.length() && line.charAt(i) == ':') {
                i = skipSpace(line, i + 1);
                if (i < line.length() && line.charAt(i) == '"') {
                    String id = readString(line, i + 1);
                    if (id != null) {
                        return id;
                    }
                }
            }
        }
        return "";
    }

    private static int skipSpace(String s, int i) {
        while (i < s.length() && " \t\n\r".indexOf(s.charAt(i)) >= 0) {
            i++;
        }
        return i;
    }

    /** The JSON string starting at i (after its opening quote), decoded; null if it is not a valid string. */
    private static String readString(String s, int i) {
        StringBuilder out = new StringBuilder();
        while (i < s.length()) {
            char c = s.charAt(i);
            if (c == '"') {
                return out.toString();
            }
            if (c != '\\') {
                out.append(c);
                i++;
                continue;
            }
            if (i + 1 >= s.length()) {
                return null;
            }
            char e = s.charAt(i + 1);
            int at = "\"\\/bfnrt".indexOf(e);
            if (at >= 0) {
                out.append("\"\\/\b\f\n\r\t".charAt(at));
                i += 2;
            } else if (e == 'u' && i + 6 <= s.length()) {
                try {
                    out.append((char) Integer.parseInt(s.substring(i + 2, i + 6), 16));
                } catch (NumberFormatException notHex) {
                    return null;
                }
                i += 6;
            } else {
                return null;
            }
        }
        return null;
    }
}
