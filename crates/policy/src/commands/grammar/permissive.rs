//! Build tools (cargo, npm, make, go, pytest): they run project code by design and are contained
//! by the sandbox, so only the subcommand, the denied flags and the path-valued flags are checked.

use crate::error::{Result, truncate_for_message};

use crate::commands::program::{CheckedArgs, Program, Value};

impl Program {
    /// Build tools: the subcommand must be allowed, denied flags (and abbreviations of denied
    /// long flags, and denied letters anywhere in a short bundle) are refused, path-valued flags
    /// are confined; everything else is the sandbox's business.
    pub(super) fn check_permissive(&self, args: &[String]) -> Result<CheckedArgs> {
        if !self.subcommands.is_empty() {
            let first = args.iter().find(|a| !a.starts_with('-') || self.subcommands.contains(a));
            match first {
                Some(sub) if self.subcommands.contains(sub) => {}
                Some(sub) => {
                    return Err(self.refuse(format!(
                        "'{}' is not an allowed subcommand of {}; allowed: {}",
                        truncate_for_message(sub),
                        self.name,
                        self.subcommands.join(", ")
                    )));
                }
                None => {
                    return Err(self.refuse(format!(
                        "{} needs a subcommand; allowed: {}",
                        self.name,
                        self.subcommands.join(", ")
                    )));
                }
            }
        }
        let mut paths = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            i += 1;
            if a == "--" {
                break;
            }
            if !a.starts_with('-') || a == "-" {
                continue;
            }
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (a.as_str(), None),
            };
            if let Some(reason) = self.denied_reason(name) {
                return Err(self.refuse(format!("{name} is not allowed: it {reason}")));
            }
            if name.starts_with("--") {
                if name.len() > 3
                    && let Some((full, reason)) =
                        self.denied.iter().find(|(d, _)| d.starts_with("--") && d.starts_with(name))
                {
                    return Err(self.refuse(format!("{name} abbreviates {full}, which is not allowed: it {reason}")));
                }
            } else if !name.starts_with("--") {
                // Go's single-dash long flags (`-toolexec`) and bundled short letters.
                if let Some((flag, reason)) = self.denied.iter().find(|(d, _)| {
                    !d.starts_with("--") && d.len() > 2 && (name == d.as_str() || name.starts_with(&format!("{d}=")))
                }) {
                    return Err(self.refuse(format!("{flag} is not allowed: it {reason}")));
                }
                for c in name[1..].chars() {
                    let flag = format!("-{c}");
                    if let Some(reason) = self.denied_reason(&flag) {
                        return Err(self.refuse(format!("{flag} (in {name}) is not allowed: it {reason}")));
                    }
                }
            }
            let path_flag = self.long.get(name).copied().or_else(|| {
                let mut chars = name.chars();
                match (chars.next(), chars.next(), chars.next()) {
                    (Some('-'), Some(c), None) => self.short.get(&c).copied(),
                    _ => None,
                }
            });
            if path_flag == Some(Value::Path) {
                let v = match inline {
                    Some(v) => v.to_string(),
                    None => self.take_value(args, &mut i, name)?,
                };
                paths.push(v);
            } else if let Some(c) =
                name.strip_prefix('-').filter(|n| !n.starts_with('-')).and_then(|n| n.chars().next())
                && self.short.get(&c) == Some(&Value::Path)
                && name.len() > 2
            {
                paths.push(name[2..].to_string());
            }
        }
        Ok(CheckedArgs { argv: args.to_vec(), paths })
    }
}
