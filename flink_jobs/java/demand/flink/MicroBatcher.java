package demand.flink;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.Map;

import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.watermarkstatus.WatermarkStatus;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.runtime.tasks.ProcessingTimeService;
import org.apache.flink.types.Row;

/**
 * Groups records by key into batches, so that the Python operator downstream is entered once per batch
 * instead of once per record (each entry costs about as much as the JVM's whole per-record work).
 *
 * <p>In: Row(key, Row(line BYTES, shard_id, sequence_number)). Out: Row(key, Row(lines BYTES[], shard_ids[],
 * sequence_numbers[])), records in arrival order. A key's batch is sent when it holds {@code maxRecords} lines
 * or {@code maxBytes} bytes of lines (so a burst of large records cannot send a gigabyte to Python at once);
 * every batch is sent {@code maxDelayMs} after its first record, before each checkpoint barrier and at the end
 * of the input. A watermark waits for the batches open when it came (so no record is behind the event-time clock
 * downstream); flushing on each watermark instead would cut replayed history, whose event time races ahead of
 * the watermark interval, into batches of one.
 * Nothing is buffered across a checkpoint, so the operator has no state: records are either sent before
 * the barrier or replayed from the source after a restore.
 */
public class MicroBatcher extends AbstractStreamOperator<Row>
        implements OneInputStreamOperator<Row, Row>, BoundedOneInput {

    private static final long serialVersionUID = 1L;

    private final int maxRecords;
    private final long maxDelayMs;
    private final long maxBytes;
    private transient Map<String, Batch> open;
    private transient boolean timerSet;
    private transient Watermark held;

    public MicroBatcher(int maxRecords, long maxDelayMs, long maxBytes) {
        if (maxRecords < 1 || maxDelayMs < 1 || maxBytes < 1) {
            throw new IllegalArgumentException("maxRecords, maxDelayMs and maxBytes must be positive");
        }
        this.maxRecords = maxRecords;
        this.maxDelayMs = maxDelayMs;
        this.maxBytes = maxBytes;
    }

    private static final class Batch {
        final ArrayList<byte[]> lines = new ArrayList<>();
        final ArrayList<String> shardIds = new ArrayList<>();
        final ArrayList<String> sequenceNumbers = new ArrayList<>();
        long bytes;

        Row toRow() {
            return Row.of(
                    lines.toArray(new byte[0][]),
                    shardIds.toArray(new String[0]),
                    sequenceNumbers.toArray(new String[0]));
        }
    }

    @Override
    public void open() throws Exception {
        super.open();
        open = new LinkedHashMap<>();
    }

    @Override
    public void processElement(StreamRecord<Row> element) {
        Row row = element.getValue();
        String key = (String) row.getField(0);
        Row record = (Row) row.getField(1);
        Batch batch = open.computeIfAbsent(key, k -> new Batch());
        byte[] line = (byte[]) record.getField(0);
        batch.lines.add(line);
        batch.bytes += line.length;
        batch.shardIds.add((String) record.getField(1));
        batch.sequenceNumbers.add((String) record.getField(2));
        if (batch.lines.size() >= maxRecords || batch.bytes >= maxBytes) {
            open.remove(key);
            send(key, batch);
            if (open.isEmpty()) {
                releaseHeld();
            }
        } else if (!timerSet) {
            timerSet = true;
            ProcessingTimeService time = getProcessingTimeService();
            time.registerTimer(time.getCurrentProcessingTime() + maxDelayMs, t -> {
                timerSet = false;
                flush();
            });
        }
    }

    private void send(String key, Batch batch) {
        output.collect(new StreamRecord<>(Row.of(key, batch.toRow())));
    }

    private void flush() {
        for (Map.Entry<String, Batch> entry : open.entrySet()) {
            send(entry.getKey(), entry.getValue());
        }
        open.clear();
        releaseHeld();
    }

    private void releaseHeld() {
        if (held != null) {
            Watermark mark = held;
            held = null;
            forward(mark);
        }
    }

    private void forward(Watermark mark) {
        try {
            super.processWatermark(mark);
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
    }

    @Override
    public void processWatermark(Watermark mark) {
        if (open.isEmpty()) {
            forward(mark);
        } else {
            held = mark; // a newer watermark replaces a held one
        }
    }

    @Override
    public void processWatermarkStatus(WatermarkStatus status) throws Exception {
        flush(); // the lines (and the watermark) before an idle status go first
        super.processWatermarkStatus(status);
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        flush();
        super.prepareSnapshotPreBarrier(checkpointId);
    }

    @Override
    public void endInput() {
        flush();
    }
}
