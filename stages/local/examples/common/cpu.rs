//! CPU time of the benchmark process, which other load on the machine changes far less than
//! wall time.

/// Returns the user plus system CPU time of the whole process in seconds, read from
/// `/proc/self/stat` (Linux; USER_HZ is 100 on every Linux ABI), or 0 elsewhere.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();

    // The fields after the command name, which is in parentheses and may contain spaces.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };

    // utime and stime are the 14th and 15th fields of the line, the 12th and 13th after the name.
    (ticks(11) + ticks(12)) / 100.0
}
