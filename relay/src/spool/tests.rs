//! The spool as a whole: limits, group commit, failed writes, reclaiming space without writing,
//! and reading pending entries back in order.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::testing::{entry, files, settings, take_all};
use super::*;

#[tokio::test]
async fn a_full_spool_refuses_new_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.max_pending = 1;
    let (spool, _) = Spool::open(s).unwrap();
    spool.append(&entry("a", 1)).await.unwrap();
    assert!(matches!(
        spool.append(&entry("b", 1)).await,
        Err(SpoolError::Full)
    ));
}

#[tokio::test]
async fn concurrent_appends_are_all_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.max_pending = 1_000;
    let (spool, _) = Spool::open(s.clone()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let spool = spool.clone();
        tasks.push(tokio::spawn(async move {
            spool.append(&entry(&format!("k{i}"), i)).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    drop(spool);
    let (spool, replay) = Spool::open(s).unwrap();
    assert_eq!(replay.pending, 200);
    assert_eq!(take_all(&spool).await.len(), 200);
}

#[tokio::test]
async fn pending_entries_are_taken_in_acceptance_order_from_the_cache_or_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.max_pending = 1_000;
    let (spool, _) = Spool::open(s.clone()).unwrap();
    let mut appended = Vec::new();
    for i in 0..20 {
        let e = entry(&format!("k{i}"), 100 - i); // receipt times need not be monotonic
        spool.append(&e).await.unwrap();
        appended.push(e.alert);
    }
    let cached = take_all(&spool).await;
    drop(spool);
    // After a restart nothing is cached: every body comes from the segment.
    let (spool, replay) = Spool::open(s).unwrap();
    assert_eq!(replay.pending, 20);
    let mut from_disk = spool.take(7).await.unwrap();
    from_disk.extend(spool.take(100).await.unwrap());
    for got in [&cached, &from_disk] {
        let ids: Vec<_> = got.iter().map(|a| &a.id).collect();
        let want: Vec<_> = appended.iter().map(|a| &a.id).collect();
        assert_eq!(ids, want);
        for (g, w) in got.iter().zip(&appended) {
            assert_eq!(
                (&g.body, &g.account, g.received_ms),
                (&w.body, &w.account, w.received_ms)
            );
        }
    }
    assert!(
        spool.take(10).await.unwrap().is_empty(),
        "each is handed out once"
    );
    assert_eq!(
        spool.pending(),
        20,
        "handed out is still pending until resolved"
    );
}

#[tokio::test]
async fn a_failed_write_is_reported_and_cut_so_the_next_one_lands_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(settings(dir.path())).unwrap();
    spool.shared.fail_writes.store(1, Ordering::SeqCst);
    let lost = entry("lost", 1);
    assert!(matches!(spool.append(&lost).await, Err(SpoolError::Io(_))));
    assert!(!spool.is_healthy());
    assert_eq!(spool.pending(), 0, "a failed append is not pending");
    let kept = entry("kept", 2);
    spool.append(&kept).await.unwrap();
    assert!(spool.is_healthy());
    drop(spool);
    let (spool, replay) = Spool::open(settings(dir.path())).unwrap();
    assert_eq!(replay.pending, 1);
    let ids: Vec<_> = take_all(&spool).await.into_iter().map(|a| a.id).collect();
    assert_eq!(
        ids,
        [kept.alert.id],
        "the torn half-record is gone, the next record is intact"
    );
    assert!(
        replay.keys.iter().all(|(_, k, _)| k != "lost"),
        "a key enters the window only once spooled"
    );
}

#[tokio::test]
async fn failed_writes_retry_the_same_segment_instead_of_starting_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.max_pending = 1_000;
    let (spool, _) = Spool::open(s).unwrap();
    spool.shared.fail_writes.store(50, Ordering::SeqCst);
    for i in 0..50 {
        assert!(spool.append(&entry(&format!("k{i}"), i)).await.is_err());
    }
    spool.append(&entry("ok", 99)).await.unwrap();
    assert_eq!(files(dir.path(), "segment-"), 1);
    assert_eq!(spool.segments(), 1);
}

#[tokio::test]
async fn a_fully_resolved_spool_is_reclaimed_even_when_nothing_can_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(settings(dir.path())).unwrap();
    let a = entry("a", 1);
    let b = entry("b", 2);
    spool.append(&a).await.unwrap();
    spool.append(&b).await.unwrap();
    let before = std::fs::read_dir(dir.path()).unwrap().count();
    // The disk is full from now on: no resolve record can be written.
    spool.shared.fail_writes.store(usize::MAX, Ordering::SeqCst);
    for id in [&a.alert.id, &b.alert.id] {
        assert!(spool.resolve(id, Resolution::Delivered).await.is_err());
    }
    spool.flush().await;
    assert_eq!(spool.pending(), 0);
    let segment_bytes: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| format::segment_number(p).is_some())
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(
        segment_bytes, 0,
        "the delivered segment went without a write"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), before);
    drop(spool);
    let (_, replay) = Spool::open(settings(dir.path())).unwrap();
    assert_eq!(replay.pending, 0, "its deletion is the durable record");
    assert_eq!(replay.keys.len(), 2, "the keys outlive the segment");
}

#[tokio::test]
async fn a_segment_holding_an_unresolved_entry_is_kept_while_writes_fail() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(settings(dir.path())).unwrap();
    let a = entry("a", 1);
    let b = entry("b", 2);
    spool.append(&a).await.unwrap();
    spool.append(&b).await.unwrap();
    spool.shared.fail_writes.store(usize::MAX, Ordering::SeqCst);
    assert!(spool
        .resolve(&a.alert.id, Resolution::Delivered)
        .await
        .is_err());
    spool.probe().await;
    spool.flush().await;
    assert_eq!(spool.pending(), 1, "a is resolved in memory");
    drop(spool);
    // A crash now: b is still there, and so is a (its resolve record never made it to disk), to
    // be sent again under the same webhook-id, which the receiver dedupes.
    let (spool, replay) = Spool::open(settings(dir.path())).unwrap();
    assert_eq!(replay.pending, 2);
    let ids: Vec<_> = take_all(&spool).await.into_iter().map(|a| a.id).collect();
    assert_eq!(ids, [a.alert.id, b.alert.id]);
}

#[tokio::test]
async fn a_probe_marks_the_spool_healthy_once_the_disk_takes_records_again() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(settings(dir.path())).unwrap();
    spool.shared.fail_writes.store(2, Ordering::SeqCst);
    assert!(spool.append(&entry("a", 1)).await.is_err());
    spool.probe().await; // fails too
    spool.flush().await;
    assert!(!spool.is_healthy());
    spool.probe().await;
    spool.flush().await;
    assert!(spool.is_healthy());
    assert_eq!(spool.ledger().pending(), 0);
    drop(spool);
    let (_, replay) = Spool::open(settings(dir.path())).unwrap();
    assert_eq!(replay.pending, 0, "the probe left nothing to replay");
}

#[tokio::test]
async fn an_append_dropped_mid_write_releases_its_admission() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.max_pending = 2;
    let (spool, _) = Spool::open(s).unwrap();
    // Polled once (admitted, record sent to the writer), then dropped like a torn-down request.
    let abandoned = entry("abandoned", 1);
    let _ = tokio::time::timeout(Duration::ZERO, spool.append(&abandoned)).await;
    spool.flush().await;
    assert_eq!(spool.ledger().pending(), 1, "the record itself was written");
    spool
        .append(&entry("next", 2))
        .await
        .expect("the abandoned append no longer counts against max_pending");
    assert!(matches!(
        spool.append(&entry("third", 3)).await,
        Err(SpoolError::Full)
    ));
}
