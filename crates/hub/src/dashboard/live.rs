//! The live feed: server-sent events telling open pages what changed (`call`, `refused`,
//! `approval`, `switch`, `access`, `upstream`, `inflight`), so they re-fetch their live region.
//!
//! Nothing runs while nobody watches. The first subscriber starts one watcher task; it follows
//! the journal (every line the hub, its approvals engine, `bastion token` and a server alone
//! write), takes the hub's call feed for the in-flight list, and notices upstream state
//! changes; it stops, dropping the hub's feed receiver, when the last subscriber leaves. A call
//! made while nobody watches costs the hub one look at its feed's receiver count.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

use super::journal::{Follower, Kind};
use super::pages::InFlight;
use super::{Backend, Dashboard};
use crate::router::CallEvent;

/// How often the watcher looks at the journal: well under the one second in which a new call
/// must appear.
const TICK: Duration = Duration::from_millis(150);

/// The feed's shared state.
pub struct Live {
    tx: broadcast::Sender<&'static str>,
    running: AtomicBool,
    inflight: Mutex<BTreeMap<u64, InFlight>>,
}

impl Default for Live {
    fn default() -> Live {
        Live { tx: broadcast::channel(64).0, running: AtomicBool::new(false), inflight: Mutex::default() }
    }
}

impl Live {
    /// The calls in flight the watcher has seen start (hub only).
    pub fn inflight(&self) -> Vec<InFlight> {
        let map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        map.values()
            .rev()
            .map(|c| InFlight {
                time: c.time.clone(),
                principal: c.principal.clone(),
                tool: c.tool.clone(),
                args: c.args.clone(),
            })
            .collect()
    }
}

/// Subscribes to the feed, starting the watcher if it is not running.
pub fn subscribe(dash: &Arc<Dashboard>) -> broadcast::Receiver<&'static str> {
    let rx = dash.live.tx.subscribe();
    if !dash.live.running.swap(true, Ordering::AcqRel) {
        tokio::spawn(watch(dash.clone()));
    }
    rx
}

async fn watch(dash: Arc<Dashboard>) {
    let live = &dash.live;
    let mut follower = Follower::at_end(&dash.journal);
    let mut calls = match &dash.backend {
        Backend::Hub { hub, .. } => Some(hub.subscribe_calls()),
        Backend::Standalone { .. } => None,
    };
    let generations = |dash: &Dashboard| match &dash.backend {
        Backend::Hub { hub, .. } => hub.upstreams().iter().map(|u| u.generation()).collect(),
        Backend::Standalone { .. } => Vec::new(),
    };
    let mut seen_generations: Vec<u64> = generations(&dash);
    // The approvals queue as other hubs sharing the store changed it (their requests and
    // decisions reach this hub through the store's feed, not its journal).
    let shared_changes = |dash: &Dashboard| match &dash.backend {
        Backend::Hub { engine: Some(e), .. } => e.shared_changes(),
        _ => 0,
    };
    let mut seen_shared = shared_changes(&dash);
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        if live.tx.receiver_count() == 0 {
            live.running.store(false, Ordering::Release);
            // A subscriber that came between the count and the store started no watcher: stay.
            if live.tx.receiver_count() == 0 || live.running.swap(true, Ordering::AcqRel) {
                live.inflight.lock().unwrap_or_else(|e| e.into_inner()).clear();
                return;
            }
        }
        let mut kinds: Vec<&'static str> = Vec::new();
        for line in follower.read() {
            let k = Kind::of(&line).as_str();
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
        if let Some(rx) = &mut calls {
            let mut changed = false;
            loop {
                match rx.try_recv() {
                    Ok(CallEvent::Started { seq, principal, tool, args, time }) => {
                        live.inflight
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(seq, InFlight { time, principal, tool, args });
                        changed = true;
                    }
                    Ok(CallEvent::Ended { seq }) => {
                        live.inflight.lock().unwrap_or_else(|e| e.into_inner()).remove(&seq);
                        changed = true;
                    }
                    Err(broadcast::error::TryRecvError::Lagged(_)) => changed = true,
                    Err(_) => break,
                }
            }
            if changed {
                kinds.push("inflight");
            }
        }
        let shared = shared_changes(&dash);
        if shared != seen_shared {
            seen_shared = shared;
            if !kinds.contains(&"approval") {
                kinds.push("approval");
            }
        }
        let now = generations(&dash);
        if now != seen_generations {
            seen_generations = now;
            kinds.push("upstream");
        }
        for k in kinds {
            let _ = live.tx.send(k);
        }
    }
}
