//! A hub's profile surfaces ([`Hub::for_profile`]): each its own upstreams, naming and tool
//! search beside the hub's, sharing its journal, metrics and approvals.

use super::*;

impl Hub {
    /// The surface of a profile beside this one: its own upstreams, naming, tool search and
    /// offered names, reached only by principals bound to it or to none
    /// ([`Principal::reaches`]). It shares this hub's journal, metrics, live feed, approval gate
    /// and call timeout; its clients have their own list-change listeners. Its upstreams are
    /// supervised by the caller ([`Hub::for_lazy_profile`]: by the surface, on first use).
    pub fn for_profile(&self, profile: &crate::profile::ProfileSettings, upstreams: Vec<Arc<Upstream>>) -> Hub {
        self.profile_surface(profile, upstreams, None)
    }

    /// [`Hub::for_profile`] whose upstreams start when the surface is first used (listed or
    /// called): until then they run no process, and `/readyz` does not wait for them. The first
    /// `tools/list` waits for them (up to 30 s), so it lists the whole surface.
    pub fn for_lazy_profile(&self, profile: &crate::profile::ProfileSettings, upstreams: Vec<Arc<Upstream>>) -> Hub {
        let lazy = LazyStart {
            started: false.into(),
            once: tokio::sync::OnceCell::new(),
            shutdown: CancellationToken::new(),
            supervisors: Mutex::default(),
        };
        self.profile_surface(profile, upstreams, Some(Arc::new(lazy)))
    }

    fn profile_surface(
        &self,
        profile: &crate::profile::ProfileSettings,
        upstreams: Vec<Arc<Upstream>>,
        lazy: Option<Arc<LazyStart>>,
    ) -> Hub {
        let upstreams = Arc::new(upstreams);
        self.profile_upstreams.lock().unwrap_or_else(|e| e.into_inner()).push((
            profile.name.as_str().into(),
            upstreams.clone(),
            lazy.clone(),
        ));
        Hub {
            lazy,
            upstreams,
            cache: Arc::new(Mutex::new((vec![], Arc::new(Catalogue::default())))),
            listeners: Arc::default(),
            naming: Arc::new(profile.naming.clone()),
            search: Arc::new(profile.tool_search.clone()),
            profile: Some(profile.name.as_str().into()),
            offered: Some(Arc::new(profile.filter.clone())),
            ..self.clone()
        }
    }

    /// This surface as the profile `name` serving only the names `offered` lets through
    /// (`serve --stdio --profile NAME`: the only surface).
    pub fn as_profile(mut self, name: &str, offered: crate::upstream::ToolFilter) -> Hub {
        self.profile = Some(name.into());
        self.offered = Some(Arc::new(offered));
        self
    }

    /// Every upstream of this hub and of the profiles made from it, with the profile's name
    /// (`None`: this surface's own).
    /// Those of a profile that starts on first use count once it has started.
    pub fn all_upstreams(&self) -> Vec<(Option<Arc<str>>, Arc<Upstream>)> {
        let mut all: Vec<_> = self.upstreams.iter().map(|u| (None, u.clone())).collect();
        for (p, ups, lazy) in self.profile_upstreams.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if lazy.as_ref().is_none_or(|l| l.started()) {
                all.extend(ups.iter().map(|u| (Some(p.clone()), u.clone())));
            }
        }
        all
    }

    /// Starts this surface's upstreams if they start on first use and have not yet, and waits
    /// (up to 30 s) until they are ready; at once otherwise.
    pub async fn ensure_started(&self) {
        let Some(lazy) = &self.lazy else { return };
        lazy.once
            .get_or_init(|| async {
                let handles = self
                    .upstreams
                    .iter()
                    .map(|u| {
                        let restart = crate::upstream::Restart::default();
                        tokio::spawn(u.clone().supervise(lazy.shutdown.child_token(), restart))
                    })
                    .collect();
                *lazy.supervisors.lock().unwrap_or_else(|e| e.into_inner()) = handles;
                lazy.started.store(true, std::sync::atomic::Ordering::Release);
                tracing::info!(profile = self.profile.as_deref().unwrap_or(""), "starting the profile's upstreams");
                crate::serve::wait_ready(&self.upstreams, Duration::from_secs(30)).await;
            })
            .await;
    }

    /// Starts this surface's upstreams in the background if they start on first use (the OAuth
    /// server asks for every surface's scopes before a connector's first request reaches it).
    pub fn start_soon(&self) {
        if self.lazy.as_ref().is_some_and(|l| !l.started())
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let hub = self.clone();
            runtime.spawn(async move { hub.ensure_started().await });
        }
    }

    /// Stops the upstreams a first use started (each supervisor closes its child's stdin, then
    /// signals it), waiting up to 10 s for each.
    pub async fn stop_started(&self) {
        let Some(lazy) = &self.lazy else { return };
        lazy.shutdown.cancel();
        let handles = std::mem::take(&mut *lazy.supervisors.lock().unwrap_or_else(|e| e.into_inner()));
        for h in handles {
            let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
        }
    }
}
