//! [`Alarm`]: a timer for a future that is woken often and times out rarely (the listener's
//! idle-connection watchdog).
//!
//! A timer raced against a connection in `select!` is polled at every wake-up of the
//! connection's socket. Once registered, though, a timer wakes its task by itself when it
//! fires, and whether it has fired is one atomic load ([`Sleep::is_elapsed`]). An [`Alarm`]
//! is polled until its timer is registered, and after that only when it has fired.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

pin_project! {
    /// A timer polled only until it is registered and once it has fired.
    #[derive(Debug)]
    pub(crate) struct Alarm {
        #[pin]
        sleep: Sleep,
        armed: bool,
    }
}

impl Alarm {
    /// An alarm `after` from now.
    pub(crate) fn after(after: Duration) -> Self {
        Alarm {
            sleep: tokio::time::sleep(after),
            armed: false,
        }
    }

    /// Whether the alarm has gone off; if not, the task is woken when it does.
    pub(crate) fn poll_fired(self: Pin<&mut Self>, cx: &mut Context<'_>) -> bool {
        let mut this = self.project();
        if *this.armed && !this.sleep.is_elapsed() {
            return false;
        }
        // polled outside the task's budget (as tokio's `timeout` polls its timer when the
        // future it wraps spent the budget): a `Sleep` polled with the budget spent would
        // answer Pending without registering its timer
        let mut sleep = tokio::task::coop::unconstrained(this.sleep.as_mut());
        match Pin::new(&mut sleep).poll(cx) {
            Poll::Ready(()) => true,
            Poll::Pending => {
                *this.armed = true;
                false
            }
        }
    }

    /// Sets the alarm to go off `after` from now.
    pub(crate) fn reset(self: Pin<&mut Self>, after: Duration) {
        let this = self.project();
        this.sleep.reset(Instant::now() + after);
        *this.armed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    /// Spends the task's whole budget on every poll (as a future reading a busy socket
    /// does), then is pending.
    struct Spender;

    impl Future for Spender {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            loop {
                let spend = tokio::task::coop::consume_budget();
                tokio::pin!(spend);
                if spend.poll(cx).is_pending() {
                    return Poll::Pending; // budget spent; the task is woken again
                }
            }
        }
    }

    #[tokio::test]
    async fn an_alarm_goes_off_when_the_task_spends_its_budget() {
        let start = Instant::now();
        let alarm = Alarm::after(Duration::from_millis(50));
        tokio::pin!(alarm);
        let spender = Spender;
        tokio::pin!(spender);
        let raced = std::future::poll_fn(|cx| {
            let _ = spender.as_mut().poll(cx);
            match alarm.as_mut().poll_fired(cx) {
                true => Poll::Ready(()),
                false => Poll::Pending,
            }
        });
        let res = tokio::time::timeout(Duration::from_secs(5), raced).await;
        assert!(res.is_ok(), "the alarm, not the outer timeout");
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn an_alarm_goes_off_again_after_a_reset() {
        let alarm = Alarm::after(Duration::from_secs(1));
        tokio::pin!(alarm);
        let start = Instant::now();
        std::future::poll_fn(|cx| match alarm.as_mut().poll_fired(cx) {
            true => Poll::Ready(()),
            false => Poll::Pending,
        })
        .await;
        alarm.as_mut().reset(Duration::from_secs(2));
        std::future::poll_fn(|cx| match alarm.as_mut().poll_fired(cx) {
            true => Poll::Ready(()),
            false => Poll::Pending,
        })
        .await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }
}
