//! Worker threads for the traffic ports (`gateway.worker_threads` = N ≥ 1): N threads, each
//! with its own single-threaded tokio runtime, its own `SO_REUSEPORT` listener on every
//! traffic port (the kernel spreads new connections over them) and its own [`Flow`] with its
//! own backend connections. A request, its backend connection and the tasks serving both stay
//! on one thread, as in nginx's worker processes; what the threads share (artifacts, token
//! cache, throttle counters, metrics) is built for concurrent use. With 0 the traffic ports
//! are served on the caller's runtime instead. Each worker thread runs under the scheduling
//! policy `gateway.worker_scheduling` names ([`WorkerScheduling`], `SCHED_BATCH` by default).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use apim_core::config::WorkerScheduling;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};
use tokio_rustls::TlsAcceptor;

use crate::flow::Flow;
use crate::listener::{self, ConnLimits};
use crate::metrics::Metrics;

/// Binds `addr` once (`workers` = 0) or once per worker with `SO_REUSEPORT`; with port 0 the
/// first listener picks the port and the others join it. `SO_REUSEADDR` is set, so a
/// restarted gateway can bind while old connections linger in TIME_WAIT.
pub(crate) fn bind(addr: SocketAddr, workers: usize) -> io::Result<Vec<TcpListener>> {
    let mut addr = addr;
    let mut out = Vec::with_capacity(workers.max(1));
    for _ in 0..workers.max(1) {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        if workers > 0 {
            reuse_port(&socket)?;
        }
        socket.bind(addr)?;
        let l = socket.listen(1024)?;
        addr = l.local_addr()?;
        out.push(l);
    }
    Ok(out)
}

#[cfg(unix)]
fn reuse_port(socket: &TcpSocket) -> io::Result<()> {
    socket.set_reuseport(true)
}

#[cfg(not(unix))]
fn reuse_port(_: &TcpSocket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "gateway.worker_threads needs SO_REUSEPORT (unix)",
    ))
}

/// One worker thread's share of the gateway.
pub(crate) struct Worker {
    /// Its own flow ([`Flow::for_worker`]).
    pub(crate) flow: Arc<Flow>,
    /// One listener per traffic port, with the TLS acceptor for the secure ones.
    pub(crate) listeners: Vec<(TcpListener, Option<TlsAcceptor>)>,
    /// Connection limits (the connection slots are shared with the other workers).
    pub(crate) limits: ConnLimits,
    /// Shared metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// The thread's scheduling policy.
    pub(crate) scheduling: WorkerScheduling,
}

impl Worker {
    /// Starts the thread; it serves until `stop` says so (or its sender is gone), drains, and
    /// then completes the returned receiver.
    pub(crate) fn spawn(
        self,
        index: usize,
        stop: watch::Receiver<bool>,
    ) -> io::Result<oneshot::Receiver<()>> {
        // leave the caller's runtime; the worker's runtime registers them again
        let listeners = self
            .listeners
            .into_iter()
            .map(|(l, tls)| Ok((l.into_std()?, tls)))
            .collect::<io::Result<Vec<_>>>()?;
        let (flow, limits, metrics, scheduling) =
            (self.flow, self.limits, self.metrics, self.scheduling);
        let (done, finished) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("apim-gateway-{index}"))
            .spawn(move || {
                apply_scheduling(scheduling, index);
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(worker = index, error = %e, "cannot start a worker runtime");
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut tasks = tokio::task::JoinSet::new();
                    for (l, tls) in listeners {
                        let l = match TcpListener::from_std(l) {
                            Ok(l) => l,
                            Err(e) => {
                                tracing::error!(worker = index, error = %e, "cannot register a listener");
                                continue;
                            }
                        };
                        tasks.spawn(listener::serve(
                            l,
                            flow.clone(),
                            tls,
                            limits.clone(),
                            metrics.clone(),
                            stopped(stop.clone()),
                        ));
                    }
                    while tasks.join_next().await.is_some() {}
                });
                let _ = done.send(());
            })?;
        Ok(finished)
    }
}

/// Puts the calling thread under `policy`; a policy the OS refuses is logged, and the thread
/// keeps the one it has.
fn apply_scheduling(policy: WorkerScheduling, index: usize) {
    if policy == WorkerScheduling::Normal {
        return;
    }
    match batch() {
        Ok(()) => tracing::debug!(worker = index, "worker thread under SCHED_BATCH"),
        Err(e) => tracing::warn!(
            worker = index,
            error = %e,
            "gateway.worker_scheduling = \"batch\" not applied; the worker keeps its policy"
        ),
    }
}

/// `SCHED_BATCH` for the calling thread, at the nice value it has.
#[cfg(target_os = "linux")]
fn batch() -> Result<(), String> {
    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadSchedulePolicy,
    };
    use thread_priority::{ThreadPriority, ThreadPriorityValue};
    let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
    // the crate sets a nice value with the policy: pick the priority that maps to the nice
    // value the thread already has (an operator's `nice`/`Nice=` stays as it was)
    let nice = thread_stat_field(NICE)?;
    let priority = (0..=u8::MAX)
        .filter_map(|p| ThreadPriorityValue::try_from(p).ok())
        .map(ThreadPriority::Crossplatform)
        .find(|p| p.to_posix(policy).ok().map(i64::from) == Some(nice))
        .ok_or_else(|| format!("no thread priority maps to nice {nice}"))?;
    set_thread_priority_and_policy(thread_native_id(), priority, policy).map_err(|e| e.to_string())
}

#[cfg(not(target_os = "linux"))]
fn batch() -> Result<(), String> {
    Err("SCHED_BATCH exists on Linux only".into())
}

/// Index of the nice value among the fields of `/proc/thread-self/stat` after the command.
const NICE: usize = 16;
/// Index of the scheduling policy among the same fields.
#[cfg(test)]
const POLICY: usize = 38;

/// A numeric field of `/proc/thread-self/stat`, counted from the one after the command name
/// (which may contain spaces and parentheses, so the fields start after its last `)`).
fn thread_stat_field(index: usize) -> Result<i64, String> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").map_err(|e| e.to_string())?;
    let fields = stat.rsplit_once(')').map(|(_, f)| f).unwrap_or_default();
    fields
        .split_whitespace()
        .nth(index)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("field {index} missing in /proc/thread-self/stat"))
}

/// Completes once `rx` turns true or its sender is gone (the serving future was dropped).
pub(crate) async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// What a thread under `policy` reports: its scheduling policy (0 normal, 3 batch) and
    /// its nice value, against the nice value of the thread that started it.
    fn policy_and_nice(policy: WorkerScheduling) -> (i64, i64, i64) {
        let parent_nice = thread_stat_field(NICE).unwrap();
        std::thread::spawn(move || {
            apply_scheduling(policy, 0);
            (
                thread_stat_field(POLICY).unwrap(),
                thread_stat_field(NICE).unwrap(),
                parent_nice,
            )
        })
        .join()
        .unwrap()
    }

    #[test]
    fn batch_policy_keeps_the_nice_value() {
        let (policy, nice, parent) = policy_and_nice(WorkerScheduling::Batch);
        assert_eq!(policy, 3, "SCHED_BATCH");
        assert_eq!(nice, parent, "nice value unchanged");
        let (policy, nice, parent) = policy_and_nice(WorkerScheduling::Normal);
        assert_eq!(policy, 0, "SCHED_OTHER");
        assert_eq!(nice, parent);
    }
}
