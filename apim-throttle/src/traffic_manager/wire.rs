//! The count protocol between gateways and Traffic Managers (JSON over HTTP):
//! `POST /internal/throttle/v1/counts` with a [`CountReport`], answered by a [`CountReply`].

use serde::{Deserialize, Serialize};

/// A batch of counts from one gateway.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CountReport {
    /// Who reports (for logs).
    #[serde(default)]
    pub gateway: String,
    /// New hits per key and window since the gateway's last report.
    pub counts: Vec<CountEntry>,
}

/// New hits of one key in one window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CountEntry {
    /// Throttle key with its level tag, e.g. `sub|app-1:/pizza:1.0`.
    pub key: String,
    /// Window start, ms since the Unix epoch (windows are epoch-aligned).
    pub window_start_ms: u64,
    /// Window length in ms.
    pub window_ms: u64,
    /// The quota of the key per window (to mark the key throttled when reached).
    pub limit: u64,
    /// Hits (or bytes) since the last report.
    pub count: u64,
}

/// The Traffic Manager's answer: totals for the reported keys, in order, and keys over quota.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CountReply {
    /// Global total of each reported entry after adding it, same order as the report.
    pub totals: Vec<u64>,
    /// Keys whose window quota is used up, from any gateway (at most [`MAX_THROTTLED`]).
    pub throttled: Vec<ThrottledKey>,
}

/// A key over quota until its window ends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct ThrottledKey {
    /// Throttle key with its level tag.
    pub key: String,
    /// Window start, ms since the Unix epoch.
    pub window_start_ms: u64,
    /// Window length in ms.
    pub window_ms: u64,
    /// The quota reached.
    pub limit: u64,
}

/// Largest batch a Traffic Manager accepts.
pub const MAX_BATCH: usize = 10_000;
/// Most throttled keys sent in one reply.
pub const MAX_THROTTLED: usize = 1_000;
