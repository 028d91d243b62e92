-- Prints wrk's exact totals as one JSON line, for bench/serve.mjs to parse (wrk's own text rounds them).
-- Only `done` is defined, so wrk still sends its static request at full speed.
done = function(summary, latency, requests)
  io.write(string.format(
    'WRK_REPORT {"requests":%d,"bytes":%d,"duration_us":%d,"status_errors":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,' ..
    '"latency_p50_us":%d,"latency_p99_us":%d,"latency_max_us":%d}\n',
    summary.requests, summary.bytes, summary.duration, summary.errors.status,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
