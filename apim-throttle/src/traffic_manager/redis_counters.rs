//! Counters in Redis, shared by several Traffic Managers. Each batch is one Lua script call, so
//! every entry's increment, expiry and throttled mark are atomic and batches from different
//! Traffic Managers never interleave inside an entry.
//!
//! Keys (all under a prefix, `apim:tm:` by default): `<prefix>c:<windowStart>:<key>` holds a
//! window's count and expires `window + 60 s` after its last update; the hash
//! `<prefix>throttled` holds `windowStart|windowMs|limit|key → windowEnd` for keys over quota.
//! The script names keys it builds itself, so it needs a single Redis (or one hash slot), not a
//! Redis Cluster.

use std::sync::Mutex;

use apim_core::ApimError;
use redis::aio::MultiplexedConnection;

use super::counters::{CounterStore, GRACE_MS};
use super::wire::{CountEntry, CountReply, ThrottledKey, MAX_THROTTLED};

const SCRIPT: &str = r#"
local prefix = ARGV[1]
local now = tonumber(ARGV[2])
local grace = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local thr = prefix .. 'throttled'
local totals = {}
for i = 0, n - 1 do
  local b = 5 + i * 5
  local key, ws, wms, limit, c = ARGV[b], ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local ck = prefix .. 'c:' .. ws .. ':' .. key
  local total = redis.call('INCRBY', ck, c)
  redis.call('PEXPIRE', ck, wms + grace)
  if total >= limit then
    redis.call('HSET', thr, ws .. '|' .. ARGV[b + 2] .. '|' .. ARGV[b + 3] .. '|' .. key, string.format('%d', tonumber(ws) + wms))
  end
  totals[#totals + 1] = total
end
local all = redis.call('HGETALL', thr)
local live = {}
for j = 1, #all, 2 do
  if tonumber(all[j + 1]) <= now then
    redis.call('HDEL', thr, all[j])
  else
    live[#live + 1] = all[j]
  end
end
return {totals, live}
"#;

/// Counters in Redis (see the module docs for the layout).
pub struct RedisCounters {
    client: redis::Client,
    conn: Mutex<Option<MultiplexedConnection>>,
    script: redis::Script,
    prefix: String,
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the URL may carry a password
        f.debug_struct("RedisCounters")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn redis_err(e: redis::RedisError) -> ApimError {
    ApimError::Internal(format!("redis: {e}"))
}

impl RedisCounters {
    /// Connects to `url` (`redis://host:port/db`); keys go under `prefix`.
    pub async fn connect(url: &str, prefix: impl Into<String>) -> Result<Self, ApimError> {
        let client = redis::Client::open(url).map_err(|e| {
            ApimError::config(
                "traffic_manager.redis_url",
                format!("{}: {e}", apim_core::config::redact(url)),
            )
        })?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(redis_err)?;
        Ok(RedisCounters {
            client,
            conn: Mutex::new(Some(conn)),
            script: redis::Script::new(SCRIPT),
            prefix: prefix.into(),
        })
    }

    async fn connection(&self) -> Result<MultiplexedConnection, ApimError> {
        let existing = self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(c) = existing {
            return Ok(c);
        }
        let c = self
            .client
            .get_multiplexed_async_connection()
            .await
            .map_err(redis_err)?;
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.clone());
        Ok(c)
    }
}

#[async_trait::async_trait]
impl CounterStore for RedisCounters {
    async fn add(&self, counts: &[CountEntry], now_ms: u64) -> Result<CountReply, ApimError> {
        let mut conn = self.connection().await?;
        let mut inv = self.script.prepare_invoke();
        inv.arg(&self.prefix)
            .arg(now_ms)
            .arg(GRACE_MS)
            .arg(counts.len());
        for e in counts {
            inv.arg(&e.key)
                .arg(e.window_start_ms)
                .arg(e.window_ms)
                .arg(e.limit)
                .arg(e.count);
        }
        let (totals, live): (Vec<u64>, Vec<String>) = match inv.invoke_async(&mut conn).await {
            Ok(r) => r,
            Err(e) => {
                if e.is_io_error() || e.is_connection_dropped() {
                    *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
                }
                return Err(redis_err(e));
            }
        };
        let throttled = live
            .iter()
            .filter_map(|f| {
                let mut it = f.splitn(4, '|');
                Some(ThrottledKey {
                    window_start_ms: it.next()?.parse().ok()?,
                    window_ms: it.next()?.parse().ok()?,
                    limit: it.next()?.parse().ok()?,
                    key: it.next()?.to_owned(),
                })
            })
            .take(MAX_THROTTLED)
            .collect();
        Ok(CountReply { totals, throttled })
    }
}
