//! The Bastion hub: one MCP server, over streamable HTTP or stdio, whose tools are those of
//! several upstream MCP servers — the built-in fs, git and shell servers run as children of
//! this binary, any stdio command, remote servers — namespaced `{upstream}__{tool}`, filtered
//! by the caller's scopes, audited, behind a Host/Origin guard and bearer tokens (or the hub's
//! own OAuth 2.1 server).
//!
//! The `bastion` binary is glue: it parses flags ([`cli`]), turns them and the configuration
//! file ([`config`]) into one [`settings::HubSettings`] value, and runs [`serve::serve`].
//! The parts, in the order a request meets them:
//!
//! * [`http`]: the axum application — the front ([`limits`]: per-address and per-principal
//!   rate limits and caps; [`refused`]: every refusal journaled), the guard (Host, Origin, media
//!   type, bearer token), [`strict`] (one reading of a body: no duplicate or look-alike keys,
//!   SEP-2243 headers that match it), the `POST /mcp`
//!   handler that answers a plain stateless `tools/call` itself and hands everything else to
//!   rmcp's streamable HTTP service, `/healthz`, `/readyz`, `/metrics`;
//! * [`router`]: the aggregating `ServerHandler`; [`router::Hub::call`] is the one function
//!   every tool call goes through, whichever path it came by;
//! * [`upstream`]: the supervised upstreams and where they come from ([`upstream::Source`]);
//!   [`contain`]: third-party commands' scrubbed environment and sandbox;
//! * [`scope`]: names, tiers from annotations, scopes; [`search`]: tools ranked by a task;
//!   [`toolsearch`]: `find_tools` and `call_tool`; [`metrics`]: Prometheus counters;
//! * [`dashboard`]: the person's web face at `/dashboard` (and `bastion dashboard`).
//! * [`search_fetch`]: the hub's own `search` and `fetch` (ChatGPT deep research) over a built-in
//!   fs upstream; [`openapi`]: the OpenAPI facade (`/openapi.json`, `POST /tools/{name}`).
//!
//! ```no_run
//! use bastion_hub::cli::ServeArgs;
//! use bastion_hub::settings::HubSettings;
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Flags {
//!     #[command(flatten)]
//!     serve: ServeArgs,
//! }
//!
//! let flags = Flags::parse_from(["bastion", "--stdio", "--root", "."]);
//! let settings = HubSettings::from_serve_args(&flags.serve)?;
//! tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(bastion_hub::serve::serve(settings))?;
//! # Ok::<(), anyhow::Error>(())
//! ```
#![deny(missing_docs)]

pub mod approvals;
pub mod bundle;
pub mod cli;
pub mod client_cli;
pub mod completions;
pub mod config;
pub mod contain;
pub mod control_cli;
pub mod dashboard;
pub mod doctor;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod profile;
pub mod refused;
pub mod remote_auth;
pub mod router;
pub mod scope;
pub mod search;
pub mod search_fetch;
pub mod serve;
pub mod session;
pub mod settings;
pub mod setup;
pub mod startup;
pub mod strict;
pub mod toolsearch;
pub mod upstream;
