//! Where a source sends its batches, and its lane: the stateless part of detection
//! (matching each line against the rules) run on the source's own thread before the
//! batch is sent, so independent sources match in parallel while everything that
//! keeps state — detector windows, correlations, campaigns — stays in the one
//! threat-detection agent, which takes each source's batches in order.

use std::cell::RefCell;
use std::sync::Arc;

use actix::Recipient;

use crate::messages::LogBatch;

/// The matching a lane does, on one thread (it may keep caches: `&mut self`).
pub trait Lane {
    /// Sets `batch.matched` (or leaves it unset: the agent then matches itself).
    fn prepare(&mut self, batch: &mut LogBatch);
}

/// Makes a source thread's [`Lane`] (one per thread, made at its first batch).
pub trait LaneMaker: Send + Sync {
    fn make(&self) -> Box<dyn Lane>;
}

/// Where a source sends its batches (the supervisor, or a shipper), with the lane that
/// prepares them first, if any.
#[derive(Clone)]
pub struct LogSink {
    to: Recipient<LogBatch>,
    lane: Option<(u64, Arc<dyn LaneMaker>)>,
}

impl From<Recipient<LogBatch>> for LogSink {
    fn from(to: Recipient<LogBatch>) -> LogSink {
        LogSink { to, lane: None }
    }
}

/// Lanes a thread keeps at most (one per sink it has sent through; a thread serves one
/// source, tests start a few runtimes on one thread).
const LANES_PER_THREAD: usize = 4;

thread_local! {
    /// This thread's lanes, by their maker's serial number.
    static LANES: RefCell<Vec<(u64, Box<dyn Lane>)>> = const { RefCell::new(Vec::new()) };
}

impl LogSink {
    /// A sink whose batches `maker`'s lanes prepare.
    pub fn with_lane(to: Recipient<LogBatch>, maker: Arc<dyn LaneMaker>) -> LogSink {
        static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        LogSink { to, lane: Some((serial, maker)) }
    }

    pub(super) fn recipient(&self) -> &Recipient<LogBatch> {
        &self.to
    }

    /// Whether the receiver is still there.
    pub fn connected(&self) -> bool {
        self.to.connected()
    }

    /// Runs this thread's lane over the batch (made at the thread's first batch), unless
    /// it was prepared already.
    pub(super) fn prepare(&self, batch: &mut LogBatch) {
        let Some((serial, maker)) = &self.lane.as_ref().filter(|_| batch.matched.is_none()) else { return };
        LANES.with(|lanes| {
            let mut lanes = lanes.borrow_mut();
            let i = match lanes.iter().position(|(s, _)| s == serial) {
                Some(i) => i,
                None => {
                    if lanes.len() == LANES_PER_THREAD {
                        lanes.remove(0);
                    }
                    lanes.push((*serial, maker.make()));
                    lanes.len() - 1
                }
            };
            // A lane that panics (rules over attacker-controlled lines) is dropped and the
            // batch goes unmatched: the agent matches it itself, where a panic is a tool
            // failure it recovers from. The source's thread goes on either way.
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lanes[i].1.prepare(batch)));
            if run.is_err() {
                lanes.remove(i);
                batch.matched = None;
                tracing::warn!(source = %batch.source, "the source's rule matching failed; the agent matches this batch");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::{Actor, Context, Handler};
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Nobody;
    impl Actor for Nobody {
        type Context = Context<Self>;
    }
    impl Handler<LogBatch> for Nobody {
        type Result = Result<crate::messages::BatchAck, crate::messages::BatchError>;
        fn handle(&mut self, _: LogBatch, _: &mut Context<Self>) -> Self::Result {
            Err(crate::messages::BatchError::Unavailable("test".into()))
        }
    }

    /// A lane that panics on a batch whose source is `bad`, else marks it.
    struct Fragile(Arc<AtomicUsize>);
    impl LaneMaker for Fragile {
        fn make(&self) -> Box<dyn Lane> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Box::new(FragileLane)
        }
    }
    struct FragileLane;
    impl Lane for FragileLane {
        fn prepare(&mut self, batch: &mut LogBatch) {
            assert!(batch.source != "bad", "a rule blew up");
            batch.matched = Some(crate::messages::Prematched { by: 7, results: Arc::new(()) });
        }
    }

    /// A thread's lane is made once and reused; one that panics is dropped, its batch
    /// goes unmatched (the agent matches it) and the thread carries on with a new lane.
    #[test]
    fn a_lane_is_made_once_per_thread_and_a_panicking_one_is_replaced() {
        actix::System::new().block_on(async {
            let made = Arc::new(AtomicUsize::new(0));
            let sink = LogSink::with_lane(Nobody.start().recipient(), Arc::new(Fragile(made.clone())));
            let batch = |source: &str| LogBatch::of(source, Vec::new(), Default::default());
            let (mut a, mut b) = (batch("good"), batch("good"));
            sink.prepare(&mut a);
            sink.prepare(&mut b);
            assert!(a.matched.is_some() && b.matched.is_some());
            assert_eq!(made.load(Ordering::Relaxed), 1, "one lane for the thread");
            let mut bad = batch("bad");
            sink.prepare(&mut bad);
            assert!(bad.matched.is_none(), "unmatched: the agent matches it");
            let mut after = batch("good");
            sink.prepare(&mut after);
            assert!(after.matched.is_some());
            assert_eq!(made.load(Ordering::Relaxed), 2, "the broken lane was replaced");
            // A sink without a lane leaves batches as they are.
            let plain: LogSink = Nobody.start().recipient().into();
            let mut c = batch("good");
            plain.prepare(&mut c);
            assert!(c.matched.is_none());
        });
    }
}
