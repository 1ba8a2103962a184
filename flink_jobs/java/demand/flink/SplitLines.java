package demand.flink;

import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.util.Collector;

/**
 * A block of newline-separated records (what the Python operator sends per batch) -> one record per line.
 * Empty lines are dropped: the job never writes one, and Kinesis refuses an empty record.
 */
public class SplitLines implements FlatMapFunction<String, String> {

    private static final long serialVersionUID = 1L;

    @Override
    public void flatMap(String block, Collector<String> out) {
        int start = 0;
        int end;
        while ((end = block.indexOf('\n', start)) >= 0) {
            if (end > start) {
                out.collect(block.substring(start, end));
            }
            start = end + 1;
        }
        if (start < block.length()) {
            out.collect(block.substring(start));
        }
    }
}
