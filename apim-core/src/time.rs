//! Wall-clock helpers. All stored timestamps are UTC milliseconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in ms since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Now, in seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    now_ms() / 1000
}
