//! The host server's rules beyond its read-only profile (`profiles/host.toml`): the `[ops]`
//! table, and the only state changes it can make — `systemctl start|stop|restart|reload UNIT`
//! for units matching the operator's globs, and `docker|podman restart NAME` when enabled —
//! built here as exact argv so the approval shows, and the server runs, the same words.
//!
//! ```
//! use bastion_policy::commands::{OpsConfig, ServiceAction};
//!
//! let ops = OpsConfig { units: vec!["myapp-*.service".into()], ..Default::default() };
//! let rules = ops.compile().unwrap();
//! let argv = rules.service_argv(ServiceAction::Restart, "myapp-web.service").unwrap();
//! assert_eq!(argv, ["--no-pager", "restart", "--", "myapp-web.service"]);
//! let refused = rules.service_argv(ServiceAction::Restart, "sshd.service").unwrap_err();
//! assert_eq!(refused.code.as_str(), "unit_not_allowed");
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result, truncate_for_message};

use super::CommandRules;
use super::schema::{HOST_PROFILE, invalid_config};

/// The `[ops]` table: what the host server may do beyond reading.
///
/// ```toml
/// [ops]
/// units = ["nginx.service", "myapp-*.service"]   # systemctl start|stop|restart|reload
/// containers = false        # docker|podman ps|inspect|logs (the socket is root-equivalent)
/// container_restart = false # docker|podman restart NAME (needs containers = true)
/// container_runtime = "docker"
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpsConfig {
    /// Globs of the units `service_action` may start, stop, restart or reload (none by default).
    pub units: Vec<String>,
    /// Offer container reads (`docker|podman ps|inspect|logs`).
    pub containers: bool,
    /// Offer `container_action` (restart a container); needs `containers`.
    pub container_restart: bool,
    /// `docker` (default) or `podman`.
    pub container_runtime: Option<String>,
}

/// What `service_action` may do to a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceAction {
    /// `systemctl start`.
    Start,
    /// `systemctl stop`.
    Stop,
    /// `systemctl restart`.
    Restart,
    /// `systemctl reload`.
    Reload,
}

impl ServiceAction {
    /// The systemctl verb.
    pub fn verb(self) -> &'static str {
        match self {
            ServiceAction::Start => "start",
            ServiceAction::Stop => "stop",
            ServiceAction::Restart => "restart",
            ServiceAction::Reload => "reload",
        }
    }
}

/// `[ops]` compiled: the unit globs and the container switches.
#[derive(Clone, Debug)]
pub struct OpsRules {
    units: globset::GlobSet,
    unit_globs: Vec<String>,
    /// Container reads are offered.
    pub containers: bool,
    /// `container_action` is offered.
    pub container_restart: bool,
    /// `docker` or `podman`.
    pub container_runtime: String,
}

impl OpsConfig {
    /// Compiles the table; a bad glob or an inconsistent switch is `invalid_config`.
    pub fn compile(&self) -> Result<OpsRules> {
        let mut b = globset::GlobSetBuilder::new();
        for g in &self.units {
            if g.is_empty() || g.starts_with('-') || g.contains('/') {
                return Err(invalid_config(format!("[ops] units: '{g}' is not a unit name or glob")));
            }
            let glob = globset::GlobBuilder::new(g)
                .literal_separator(true)
                .build()
                .map_err(|e| invalid_config(format!("[ops] units: '{g}': {e}")))?;
            b.add(glob);
        }
        let units = b.build().map_err(|e| invalid_config(format!("[ops] units: {e}")))?;
        if self.container_restart && !self.containers {
            return Err(invalid_config("[ops] container_restart needs containers = true".into()));
        }
        let runtime = self.container_runtime.clone().unwrap_or_else(|| "docker".into());
        if runtime != "docker" && runtime != "podman" {
            return Err(invalid_config(format!("[ops] container_runtime: '{runtime}' (docker or podman)")));
        }
        Ok(OpsRules {
            units,
            unit_globs: self.units.clone(),
            containers: self.containers,
            container_restart: self.container_restart,
            container_runtime: runtime,
        })
    }

    /// The host profile's read-only command rules under this table (container reads removed
    /// unless enabled).
    pub fn command_rules(&self) -> Result<CommandRules> {
        let remove: Vec<String> = if self.containers { vec![] } else { vec!["docker".into(), "podman".into()] };
        CommandRules::load(HOST_PROFILE, &Default::default(), &remove)
    }
}

/// Checks that `unit` is a systemd unit name (letters, digits, `:_.@-\`, at most 255 bytes,
/// not starting with `-`): every unit a host tool names passes here first.
pub fn check_unit_name(unit: &str) -> Result<()> {
    let ok = !unit.is_empty()
        && unit.len() <= 255
        && !unit.starts_with('-')
        && !unit.starts_with('.')
        && unit.chars().all(|c| c.is_ascii_alphanumeric() || ":_.@-\\".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("'{}' is not a systemd unit name (e.g. nginx.service)", truncate_for_message(unit)),
        ))
    }
}

/// Checks a container name or id: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 128 bytes.
pub fn check_container_name(name: &str) -> Result<()> {
    let ok = name.len() <= 128
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::InvalidArgument,
            format!("'{}' is not a container name or id", truncate_for_message(name)),
        ))
    }
}

impl OpsRules {
    /// The globs of the units that may be acted on.
    pub fn unit_globs(&self) -> &[String] {
        &self.unit_globs
    }

    /// The unit with a type suffix (`nginx` → `nginx.service`, as systemctl reads it).
    pub fn full_unit_name(unit: &str) -> String {
        const TYPES: &[&str] = &[
            ".service",
            ".socket",
            ".target",
            ".timer",
            ".mount",
            ".automount",
            ".path",
            ".slice",
            ".scope",
            ".swap",
            ".device",
        ];
        if TYPES.iter().any(|t| unit.ends_with(t)) { unit.to_string() } else { format!("{unit}.service") }
    }

    /// `systemctl`'s arguments for `action` on `unit`, or `unit_not_allowed` when the unit
    /// matches none of `[ops] units`.
    pub fn service_argv(&self, action: ServiceAction, unit: &str) -> Result<Vec<String>> {
        check_unit_name(unit)?;
        let full = Self::full_unit_name(unit);
        if !self.units.is_match(&full) {
            let allowed = if self.unit_globs.is_empty() {
                "no unit is allowed ([ops] units is empty)".to_string()
            } else {
                format!("allowed: {}", self.unit_globs.join(", "))
            };
            return Err(Error::new(
                ErrorCode::UnitNotAllowed,
                format!(
                    "{} of {} is not allowed: {allowed}; the operator lists units in [ops] units",
                    action.verb(),
                    full
                ),
            ));
        }
        Ok(vec!["--no-pager".into(), action.verb().into(), "--".into(), full])
    }

    /// The container runtime's arguments to restart `name`, or `not_enabled` unless
    /// `[ops] container_restart` is on.
    pub fn container_restart_argv(&self, name: &str) -> Result<Vec<String>> {
        if !self.container_restart {
            return Err(Error::new(
                ErrorCode::NotEnabled,
                "restarting containers is not enabled; the operator sets [ops] containers = true and container_restart = true",
            ));
        }
        check_container_name(name)?;
        Ok(vec!["restart".into(), "--".into(), name.into()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_globs_decide_and_names_are_checked() {
        let rules = OpsConfig { units: vec!["nginx.service".into(), "myapp-*.service".into()], ..Default::default() }
            .compile()
            .unwrap();
        let table: &[(&str, Result<&str, &str>)] = &[
            ("nginx", Ok("nginx.service")),
            ("nginx.service", Ok("nginx.service")),
            ("myapp-web.service", Ok("myapp-web.service")),
            ("myapp-web", Ok("myapp-web.service")),
            ("sshd.service", Err("unit_not_allowed")),
            ("nginx.socket", Err("unit_not_allowed")),
            ("--all", Err("invalid_argument")),
            ("-H", Err("invalid_argument")),
            ("a b", Err("invalid_argument")),
            ("x;reboot", Err("invalid_argument")),
            ("", Err("invalid_argument")),
            ("../x", Err("invalid_argument")),
        ];
        for (unit, want) in table {
            let got = rules.service_argv(ServiceAction::Restart, unit);
            match (got, want) {
                (Ok(argv), Ok(full)) => assert_eq!(argv, ["--no-pager", "restart", "--", full]),
                (Err(e), Err(code)) => assert_eq!(e.code.as_str(), *code, "{unit}"),
                (got, want) => panic!("{unit}: {got:?} != {want:?}"),
            }
        }
    }

    #[test]
    fn containers_restart_only_when_enabled() {
        let off = OpsConfig::default().compile().unwrap();
        assert_eq!(off.container_restart_argv("web").unwrap_err().code.as_str(), "not_enabled");
        assert!(OpsConfig { container_restart: true, ..Default::default() }.compile().is_err());
        let on = OpsConfig { containers: true, container_restart: true, ..Default::default() }.compile().unwrap();
        assert_eq!(on.container_restart_argv("web").unwrap(), ["restart", "--", "web"]);
        assert_eq!(on.container_restart_argv("-H").unwrap_err().code.as_str(), "invalid_argument");
        let rules = OpsConfig::default().command_rules().unwrap();
        assert_eq!(rules.check("docker", &["ps".into()]).unwrap_err().code.as_str(), "command_not_allowed");
    }
}
