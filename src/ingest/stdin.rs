//! `Stdin`: reads lines from standard input until it closes. Lines are not
//! checkpointed (a pipe cannot be re-read); each batch is applied before more is read.

use std::sync::Arc;

use actix::prelude::*;
use chrono::Utc;
use tokio::io::AsyncReadExt;

use super::{BatchBuilder, LineSplitter, LogSink, send_batch};
use crate::config::{IngestConfig, LogFormat};
use crate::telemetry::Metrics;

pub struct Stdin {
    pub source: String,
    pub format: LogFormat,
    pub cfg: IngestConfig,
    pub sink: LogSink,
    pub metrics: Arc<Metrics>,
}

impl Actor for Stdin {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (source, format, cfg, sup) = (self.source.clone(), self.format, self.cfg.clone(), self.sink.clone());
        let metrics = self.metrics.clone();
        ctx.spawn(actix::fut::wrap_future(async move {
            let mut input = tokio::io::stdin();
            let mut splitter = LineSplitter::new(cfg.max_line_bytes);
            let mut builder = BatchBuilder::new(format, Utc::now()).shipping(cfg.ship);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match input.read(&mut buf).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::error!(%source, error = %e, "cannot read stdin");
                        metrics.inc(&metrics.source_errors);
                        0
                    }
                };
                builder.parser.set_reference(Utc::now());
                let (inv0, tr0) = (splitter.invalid_utf8, splitter.truncated);
                if n == 0 {
                    splitter.finish(&mut |l| builder.line(l));
                } else {
                    splitter.push(&buf[..n], &mut |l| builder.line(l));
                }
                builder.stats.invalid_utf8 += splitter.invalid_utf8 - inv0;
                builder.stats.truncated += splitter.truncated - tr0;
                if builder.stats.lines > 0 {
                    let batch = builder.take(&source, None, None);
                    if let Err(e) = send_batch(&sup, batch).await {
                        tracing::error!(%source, error = %e, "batch rejected");
                    }
                }
                if n == 0 {
                    tracing::info!(%source, "stdin closed");
                    return;
                }
            }
        }));
    }
}
