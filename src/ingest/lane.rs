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
            lanes[i].1.prepare(batch);
        });
    }
}
