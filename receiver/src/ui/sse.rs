//! Live timeline over server-sent events. Each stream polls the journal's newest messages once a
//! second (one indexed query: by rowid) and sends a `message` event for every row that is new or
//! changed since its last look; its first look sends every row, so a page needs no separate
//! load. The stream ends with a `signed_out` event once its session expires or is signed out,
//! and without one when the receiver shuts down.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, Stream, StreamExt as _};
use warp::sse::Event;

use super::views::{safe_json, timeline_row, Filters};
use crate::routes::AppState;

/// How often a stream looks at the journal.
pub const POLL: Duration = Duration::from_secs(1);
/// How many of the newest messages a stream (and the timeline) looks at.
pub const WINDOW: u32 = 200;

/// The events of one signed-in page: a task polls the journal and hands each batch over a
/// channel; it stops when the page goes away (the channel closes) or the session ends.
pub fn events(
    state: Arc<AppState>,
    session: String,
    filters: Filters,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + Sync + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Event>>(4);
    tokio::spawn(poll(state, session, filters, tx));
    stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|batch| (batch, rx))
    })
    .flat_map(|events| stream::iter(events.into_iter().map(Ok)))
}

async fn poll(
    state: Arc<AppState>,
    session: String,
    filters: Filters,
    tx: tokio::sync::mpsc::Sender<Vec<Event>>,
) {
    let mut ticks = tokio::time::interval(POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Row JSON last sent, per message id.
    let mut sent: HashMap<String, String> = HashMap::new();
    let stopped = state.ui.stopped();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = tx.closed() => return,
            () = &mut stopped => return,
        }
        if state.ui.sessions.get(&session).is_none() {
            let _ = tx
                .send(vec![Event::default().event("signed_out").data("{}")])
                .await;
            return;
        }
        let batch = match state.journal.recent_messages(WINDOW).await {
            Ok(messages) => {
                let interpreter = &state.ingest.interpreter;
                let mut out = Vec::new();
                // Oldest first, so a page inserting each in time order ends up newest first.
                for m in messages.iter().rev() {
                    let row = timeline_row(m, interpreter);
                    if !filters.admits(&row) {
                        continue;
                    }
                    let text = safe_json(&row);
                    if sent.get(&m.id) != Some(&text) {
                        sent.insert(m.id.clone(), text.clone());
                        out.push(Event::default().event("message").data(text));
                    }
                }
                out
            }
            Err(e) => {
                tracing::warn!(error = %e, "dashboard: cannot read the journal");
                vec![Event::default().event("journal_unavailable").data("{}")]
            }
        };
        if !batch.is_empty() && tx.send(batch).await.is_err() {
            return;
        }
    }
}
