//! The change feed (`LISTEN`/`NOTIFY` on one channel) and the approvals queue's rows.

use super::*;

/// An approval row of [`APPROVAL_COLUMNS`].
pub(super) fn approval_row(r: &Row) -> ApprovalRecord {
    ApprovalRecord {
        id: r.get(0),
        principal: r.get(1),
        tool: r.get(2),
        args_hash: r.get(3),
        fingerprint: r.get(4),
        hold: r.get(5),
        view: view_of(r.get(6)),
        created_ms: u(r.get(7)),
        expires_ms: u(r.get(8)),
        timeout_ms: u(r.get(9)),
        decision: decision_of(r.get(10), r.get(11), r.get(12)),
        decided_ms: r.get::<_, Option<i64>>(13).map(u),
    }
}

/// The change feed's loop, on a thread and a connection of its own: `LISTEN`, then hand every
/// notification to `on_change`. A lost connection is opened again with a growing pause (up to
/// five seconds), and everything is treated as changed since notifications sent meanwhile are
/// lost. Stops when `stop` is set (checked at least every half second).
pub(super) fn listen(
    config: &pg::Config,
    tls: &MakeRustlsConnect,
    location: &str,
    stop: &std::sync::atomic::AtomicBool,
    on_change: &OnChange,
) {
    use std::sync::atomic::Ordering;
    let mut pause = Duration::from_millis(100);
    while !stop.load(Ordering::Acquire) {
        let mut client = match config
            .connect(tls.clone())
            .and_then(|mut c| c.batch_execute(&format!("LISTEN {CHANNEL}")).map(|()| c))
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("store {location}: change feed: {}; retrying in {pause:?}", pg_message(&e));
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        pause = Duration::from_millis(100);
        on_change(Change::All);
        let mut idle = Duration::ZERO;
        'connected: while !stop.load(Ordering::Acquire) {
            let lost = {
                let mut notifications = client.notifications();
                let mut iter = notifications.timeout_iter(Duration::from_millis(500));
                loop {
                    match pg::fallible_iterator::FallibleIterator::next(&mut iter) {
                        Ok(Some(n)) => {
                            idle = Duration::ZERO;
                            on_change(Change::parse(n.payload()));
                        }
                        Ok(None) => break false,
                        Err(e) => {
                            tracing::warn!("store {location}: change feed lost: {}", pg_message(&e));
                            break true;
                        }
                    }
                }
            };
            if lost {
                break 'connected;
            }
            idle += Duration::from_millis(500);
            // A connection that died quietly (a server restarted behind a proxy) delivers
            // nothing: check it when the feed has been idle a while.
            if idle >= Duration::from_secs(5) {
                idle = Duration::ZERO;
                if client.is_valid(Duration::from_secs(2)).is_err() {
                    tracing::warn!("store {location}: change feed connection lost");
                    break;
                }
            }
        }
    }
}

/// Tells every listening replica of a change, in the transaction that makes it: PostgreSQL
/// delivers the notification at commit, and never for a rolled-back transaction.
pub(super) fn notify(c: &mut impl GenericClient, change: &Change) -> Result<(), pg::Error> {
    c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &change.payload()])?;
    Ok(())
}
